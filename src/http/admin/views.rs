//! The admin page's HTML, written with maud: every value is escaped unless marked otherwise
//! (nothing here is). One layout (skip link, navigation, logout form) around each page; no
//! inline script or style (the CSP forbids both), so behaviour comes from `admin.js` through
//! `data-` attributes and looks from `admin.css` through classes. Views only show what the
//! handlers give them: they decide nothing.

use maud::{html, Markup, DOCTYPE};

use super::forms::{CreateForm, KeysQuery};
use crate::domain::model::{Application, KeyRecord, Standing};
use crate::domain::timestamp::Timestamp;
use crate::service::throughput::MINUTES;
use crate::storage::{AuditEvent, KeyCounts};

/// The pages of the navigation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nav {
    /// `/admin`.
    Overview,
    /// `/admin/keys` and one key.
    Keys,
    /// `/admin/keys/new`.
    NewKey,
    /// `/admin/applications`.
    Applications,
    /// `/admin/audit`.
    Audit,
}

const NAV: [(Nav, &str, &str); 5] = [
    (Nav::Overview, "/admin", "Overview"),
    (Nav::Keys, "/admin/keys", "Keys"),
    (Nav::NewKey, "/admin/keys/new", "Create key"),
    (Nav::Applications, "/admin/applications", "Applications"),
    (Nav::Audit, "/admin/audit", "Audit log"),
];

/// What every logged-in page shows around its content.
pub struct Chrome<'a> {
    /// The page's title.
    pub title: &'a str,
    /// Which navigation entry is current.
    pub current: Nav,
    /// The page session's CSRF token, for the forms.
    pub csrf: &'a str,
    /// Who is logged in, for people.
    pub who: String,
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · apikeyd admin" }
            link rel="stylesheet" href="/admin/assets/admin.css";
            script src="/admin/assets/admin.js" defer {}
        }
    }
}

/// The hidden CSRF field every state-changing form carries.
fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf); }
}

/// A logged-in page: `content` inside the navigation and the logout form.
pub fn layout(chrome: &Chrome<'_>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(chrome.title))
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    a.brand href="/admin" { "apikeyd admin" }
                    nav aria-label="Main" {
                        ul {
                            @for (nav, href, label) in NAV {
                                li { a href=(href) aria-current=[(nav == chrome.current).then_some("page")] { (label) } }
                            }
                        }
                    }
                    span.who { (chrome.who) }
                    form method="post" action="/admin/logout" {
                        (csrf_field(chrome.csrf))
                        button type="submit" { "Log out" }
                    }
                }
                main #main tabindex="-1" {
                    h1 { (chrome.title) }
                    (content)
                }
            }
        }
    }
}

/// A page for a refusal, outside the layout (the request may have no session).
pub fn problem(title: &str, message: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                main #main {
                    h1 { (title) }
                    p.error role="alert" { (message) }
                    p { a href="/admin" { "Back to the admin page" } }
                }
            }
        }
    }
}

fn error_box(error: Option<&str>) -> Markup {
    html! {
        @if let Some(message) = error {
            p.error role="alert" #form-error { (message) }
        }
    }
}

/// The login form, with the reason the last attempt failed.
pub fn login(error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Log in"))
            body {
                main #main {
                    h1 { "apikeyd admin: log in" }
                    (error_box(error))
                    form.stack method="post" action="/admin/login" {
                        div {
                            label for="api_key" { "API key" }
                            p.hint #api_key-hint { "A key that may manage keys: the root key, or an application's managing key. It is sent once; the page then holds a session." }
                            input #api_key type="password" name="api_key" autocomplete="off" required aria-describedby="api_key-hint" autofocus;
                        }
                        div { button type="submit" { "Log in" } }
                    }
                }
            }
        }
    }
}

/// How a key stands at `now`, in a word.
fn standing_word(key: &KeyRecord, now: Timestamp) -> &'static str {
    match key.standing(now) {
        Standing::Usable => "active",
        Standing::Revoked => "revoked",
        Standing::Deleted => "deleted",
        Standing::Disabled => "disabled",
        Standing::Expired => "expired",
    }
}

fn badge(key: &KeyRecord, now: Timestamp) -> Markup {
    let word = standing_word(key, now);
    html! { span class=(format!("badge {word}")) { (word) } }
}

fn when(at: Option<Timestamp>, none: &str) -> Markup {
    html! {
        @match at {
            Some(at) => time datetime=(at) { (at) },
            None => span.muted { (none) },
        }
    }
}

/// The overview: counts, each linking to the keys it counts, and the verification chart.
pub fn overview(chrome: &Chrome<'_>, counts: &KeyCounts, hour: &[(Timestamp, u64)]) -> Markup {
    // Each count links to the listing that selects the same keys; the key list has no filter
    // for disabled or expired keys, so those two counts link nowhere.
    let cards: [(&str, u64, Option<&str>); 8] = [
        ("Active", counts.active, Some("/admin/keys?status=active")),
        ("Revoked", counts.revoked, Some("/admin/keys?status=revoked")),
        ("Deleted", counts.deleted, Some("/admin/keys?status=deleted")),
        ("Disabled", counts.disabled, None),
        ("Expired", counts.expired, None),
        ("Expiring within 7 days", counts.expiring, Some("/admin/keys?status=active&expiring_within=7d")),
        ("Unused for 90 days", counts.unused, Some("/admin/keys?status=active&unused_for=90d")),
        ("Verifications, last hour", hour.iter().map(|(_, n)| n).sum(), None),
    ];
    layout(
        chrome,
        html! {
            h2 #counts { "Keys" }
            ul.cards aria-labelledby="counts" {
                @for (label, n, href) in cards {
                    li {
                        @match href {
                            Some(href) => a href=(href) { span.n { (n) } (label) },
                            None => { span.n { (n) } (label) },
                        }
                    }
                }
            }
            h2 { "Verifications per minute, last hour" }
            (chart(hour))
        },
    )
}

/// Bars of `hour` (oldest first), drawn as inline SVG, with a text equivalent.
fn chart(hour: &[(Timestamp, u64)]) -> Markup {
    let (width, height, bar) = (600u64, 100u64, 10u64);
    let peak = hour.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let total: u64 = hour.iter().map(|(_, n)| n).sum();
    let scale = peak.max(1);
    html! {
        svg #chart.chart viewBox=(format!("0 0 {} {}", width + 40, height + 30)) width=(width + 40) height=(height + 30)
            role="img" aria-labelledby="chart-title chart-desc" {
            title #chart-title { "Verifications per minute over the last " (MINUTES) " minutes" }
            desc #chart-desc { (total) " in all; the busiest minute had " (peak) "." }
            line.axis x1="30" y1=(height + 2) x2=(width + 32) y2=(height + 2) {}
            text x="0" y="10" { (peak) }
            text x="0" y=(height) { "0" }
            @for (i, (at, n)) in hour.iter().enumerate() {
                @let h = n * height / scale;
                rect.bar x=(32 + i as u64 * bar) y=(height + 1 - h) width=(bar - 2) height=(h) {
                    title { (at) ": " (n) }
                }
            }
            text x="30" y=(height + 20) { (MINUTES) " min ago" }
            text x=(width) y=(height + 20) { "now" }
        }
        p.muted { (total) " verifications in the last hour; busiest minute: " (peak) "." }
    }
}

/// The key list with its search form.
pub fn keys(
    chrome: &Chrome<'_>,
    query: &KeysQuery,
    found: &[KeyRecord],
    next: Option<&str>,
    now: Timestamp,
    error: Option<&str>,
) -> Markup {
    let statuses = [("", "Any"), ("active", "Active"), ("revoked", "Revoked"), ("deleted", "Deleted")];
    let next_href = next.map(|cursor| {
        let mut q = query.clone();
        q.cursor = cursor.to_owned();
        format!("/admin/keys?{}", serde_urlencoded_pairs(&q))
    });
    layout(
        chrome,
        html! {
            (error_box(error))
            form.row method="get" action="/admin/keys" role="search" {
                div { label for="q" { "Title or prefix" } input #q type="search" name="q" value=(query.q); }
                div { label for="owner" { "Owner" } input #owner type="text" name="owner" value=(query.owner); }
                div {
                    label for="status" { "Status" }
                    select #status name="status" {
                        @for (value, label) in statuses {
                            option value=(value) selected[query.status == value] { (label) }
                        }
                    }
                }
                div { label for="expiring_within" { "Expiring within" } input #expiring_within type="text" name="expiring_within" value=(query.expiring_within) placeholder="7d"; }
                div { label for="unused_for" { "Unused for" } input #unused_for type="text" name="unused_for" value=(query.unused_for) placeholder="90d"; }
                div { button type="submit" { "Search" } }
            }
            @if found.is_empty() {
                p { "No keys match." }
            } @else {
                table {
                    caption.muted { "Newest first" }
                    thead { tr { th scope="col" { "Title" } th scope="col" { "Prefix" } th scope="col" { "Status" } th scope="col" { "Owner" } th scope="col" { "Expires" } th scope="col" { "Last used" } } }
                    tbody {
                        @for key in found {
                            tr {
                                td { a href=(format!("/admin/keys/{}", key.id)) { (key.title) } }
                                td { code { (key.prefix) } }
                                td { (badge(key, now)) }
                                td { (key.owner.as_deref().unwrap_or("")) }
                                td { (when(key.expires_at, "never")) }
                                td { (when(key.last_used_at, "never")) }
                            }
                        }
                    }
                }
            }
            @if let Some(href) = next_href {
                p.pager { a href=(href) rel="next" { "Older keys" } }
            }
        },
    )
}

/// The query string of `q`, for the next-page link.
fn serde_urlencoded_pairs(q: &KeysQuery) -> String {
    let pairs = [
        ("q", &q.q),
        ("owner", &q.owner),
        ("status", &q.status),
        ("expiring_within", &q.expiring_within),
        ("unused_for", &q.unused_for),
        ("cursor", &q.cursor),
    ];
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", percent(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `text` with everything but unreserved characters percent-encoded.
fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What one key page shows besides the key: a notice and an error from the last action.
pub struct KeyNotes<'a> {
    /// A refusal of the last action.
    pub error: Option<&'a str>,
}

/// One key: its facts, its actions (each confirmed), its audit history.
pub fn key(
    chrome: &Chrome<'_>,
    key: &KeyRecord,
    history: &[AuditEvent],
    now: Timestamp,
    notes: KeyNotes<'_>,
) -> Markup {
    let base = format!("/admin/keys/{}", key.id);
    let live = key.standing(now) != Standing::Revoked && key.standing(now) != Standing::Deleted;
    layout(
        chrome,
        html! {
            (error_box(notes.error))
            dl.facts {
                dt { "Status" } dd { (badge(key, now)) }
                dt { "Id" } dd { (key.id) }
                dt { "UUID" } dd { code { (key.uuid) } }
                dt { "Prefix" } dd { code { (key.prefix) } }
                dt { "Grants" } dd {
                    ul { @for grant in key.grants.iter() { li { code { (grant.access.as_str()) ":" (grant.path) } } } }
                }
                dt { "Owner" } dd { (key.owner.as_deref().unwrap_or("none")) }
                dt { "Meta" } dd { @match &key.meta { Some(m) => code { (m.as_str()) }, None => span.muted { "none" } } }
                dt { "Application" } dd { @match key.application_uuid { Some(u) => code { (u) }, None => span.muted { "none (global)" } } }
                dt { "Created" } dd { (when(Some(key.created_at), "")) }
                dt { "Expires" } dd { (when(key.expires_at, "never")) }
                dt { "Last used" } dd { (when(key.last_used_at, "never")) }
                @if let Some(at) = key.revoked_at { dt { "Revoked" } dd { (when(Some(at), "")) } }
                @if let Some(at) = key.deleted_at { dt { "Deleted" } dd { (when(Some(at), "")) } }
                dt { "Rate limit" } dd {
                    @match key.rate_limit { Some(r) => { (r.limit) " per " (r.window_seconds) " s" }, None => span.muted { "none" } }
                }
                dt { "Credits" } dd { @match key.credits { Some(c) => { (c.remaining) " left" }, None => span.muted { "none" } } }
                dt { "Allowed IPs" } dd {
                    @match &key.allowed_ips {
                        Some(list) => { @for (i, cidr) in list.iter().enumerate() { @if i > 0 { ", " } code { (cidr.to_string()) } } },
                        None => span.muted { "anywhere" },
                    }
                }
                @if let Some(from) = key.rotated_from { dt { "Replaced" } dd { a href=(format!("/admin/keys/{from}")) { "key " (from) } } }
                @if let Some(to) = key.rotated_to { dt { "Replaced by" } dd { a href=(format!("/admin/keys/{to}")) { "key " (to) } } }
            }
            @if key.standing(now) != Standing::Deleted {
                h2 { "Actions" }
                div.actions {
                    @if live {
                        @if key.enabled {
                            (action(chrome, &base, "disable", "Disable", "Disable this key? It stops working until enabled again.", "quiet", None))
                        } @else {
                            (action(chrome, &base, "enable", "Enable", "Enable this key again?", "quiet", None))
                        }
                        (action(chrome, &base, "rotate", "Rotate", "Rotate this key? A new key replaces it; the old one works only during the grace period.", "quiet", Some(html! {
                            div { label for="grace_seconds" { "Grace (seconds)" } input #grace_seconds type="number" name="grace_seconds" min="0" value="0"; }
                        })))
                        (action(chrome, &base, "revoke", "Revoke", "Revoke this key? This cannot be undone.", "danger", None))
                    }
                    (action(chrome, &base, "delete", "Delete", "Delete this key? It can never verify again. This cannot be undone.", "danger", None))
                }
            }
            h2 { "History" }
            (audit_table(history))
        },
    )
}

fn action(
    chrome: &Chrome<'_>,
    base: &str,
    name: &str,
    label: &str,
    question: &str,
    class: &str,
    extra: Option<Markup>,
) -> Markup {
    html! {
        form method="post" action=(format!("{base}/{name}")) data-confirm=(question) {
            (csrf_field(chrome.csrf))
            @if let Some(extra) = extra { (extra) }
            button type="submit" class=(class) #(format!("action-{name}")) { (label) }
        }
    }
}

fn audit_table(events: &[AuditEvent]) -> Markup {
    html! {
        @if events.is_empty() {
            p { "Nothing recorded." }
        } @else {
            table {
                thead { tr { th scope="col" { "When" } th scope="col" { "Action" } th scope="col" { "Key" } th scope="col" { "By" } th scope="col" { "Changes" } th scope="col" { "Request" } } }
                tbody {
                    @for e in events {
                        tr {
                            td { (when(Some(e.at), "")) }
                            td { (e.action.as_str()) }
                            td { @match e.key_id { Some(id) => a href=(format!("/admin/keys/{id}")) { (id) }, None => span.muted { "-" } } }
                            td { @match e.actor_key_id { Some(id) => { "key " (id) }, None => span.muted { "operator" } } }
                            td { @match &e.changes { Some(c) => code { (c.to_string()) }, None => span.muted { "-" } } }
                            td { code { (e.request_id.as_deref().unwrap_or("-")) } }
                        }
                    }
                }
            }
        }
    }
}

/// The create form, filled with what was typed, and the reason it was refused.
pub fn new_key(chrome: &Chrome<'_>, form: &CreateForm, error: Option<&str>) -> Markup {
    layout(
        chrome,
        html! {
            (error_box(error))
            form.stack method="post" action="/admin/keys" {
                (csrf_field(chrome.csrf))
                div {
                    label for="title" { "Title" }
                    input #title type="text" name="title" value=(form.title) required maxlength="200";
                }
                div {
                    label for="grants" { "Grants " span.hint { "(one per line, ACCESS:PATH, e.g. read:/data; empty: your own)" } }
                    textarea #grants name="grants" { (form.grants) }
                }
                div {
                    label for="expires_at" { "Expires at " span.hint { "(RFC 3339, e.g. 2027-01-31T00:00:00Z; empty: your own expiry)" } }
                    input #expires_at type="text" name="expires_at" value=(form.expires_at);
                }
                div {
                    label for="owner" { "Owner " span.hint { "(optional)" } }
                    input #owner type="text" name="owner" value=(form.owner);
                }
                div {
                    label for="meta" { "Meta " span.hint { "(optional JSON object)" } }
                    textarea #meta name="meta" { (form.meta) }
                }
                fieldset {
                    legend { "Limits (optional)" }
                    div.row {
                        div { label for="rate_limit" { "Verifications" } input #rate_limit type="number" min="1" name="rate_limit" value=(form.rate_limit); }
                        div { label for="rate_window" { "per seconds" } input #rate_window type="number" min="1" name="rate_window" value=(form.rate_window); }
                        div { label for="credits" { "Credits" } input #credits type="number" min="0" name="credits" value=(form.credits); }
                    }
                    div {
                        label for="allowed_ips" { "Allowed IPs " span.hint { "(CIDRs, separated by commas)" } }
                        input #allowed_ips type="text" name="allowed_ips" value=(form.allowed_ips);
                    }
                }
                div { button type="submit" #create { "Create key" } }
            }
        },
    )
}

/// A key just made (or made by rotation): its plaintext, this once.
pub fn created(chrome: &Chrome<'_>, key: &KeyRecord, plaintext: &str) -> Markup {
    layout(
        chrome,
        html! {
            p.warning role="alert" {
                strong { "Copy this key now. " }
                "It will not be shown again: apikeyd keeps only its hash. If it is lost, rotate or revoke the key and make a new one."
            }
            div.secret {
                code #plaintext { (plaintext) }
                button type="button" data-copy="plaintext" aria-describedby="copy-status" #copy { "Copy to clipboard" }
                span #copy-status role="status" {}
            }
            p { a href=(format!("/admin/keys/{}", key.id)) { "Go to the key: " (key.title) } }
        },
    )
}

/// The applications in scope, and (for a global manager) the form that makes one.
pub fn applications(chrome: &Chrome<'_>, apps: &[Application], can_create: bool, error: Option<&str>) -> Markup {
    layout(
        chrome,
        html! {
            (error_box(error))
            @if apps.is_empty() {
                p { "No applications." }
            } @else {
                table {
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Id" } th scope="col" { "Created" } } }
                    tbody {
                        @for app in apps {
                            tr { td { (app.name) } td { code { (app.uuid) } } td { (when(Some(app.created_at), "")) } }
                        }
                    }
                }
            }
            @if can_create {
                h2 { "New application" }
                form.stack method="post" action="/admin/applications" {
                    (csrf_field(chrome.csrf))
                    div { label for="name" { "Name" } input #name type="text" name="name" required maxlength="200"; }
                    div { button type="submit" { "Create application" } }
                }
            }
        },
    )
}

/// One page of the audit log.
pub fn audit(chrome: &Chrome<'_>, events: &[AuditEvent], next: Option<&str>) -> Markup {
    layout(
        chrome,
        html! {
            (audit_table(events))
            @if let Some(cursor) = next {
                p.pager { a href=(format!("/admin/audit?cursor={}", percent(cursor))) rel="next" { "Older entries" } }
            }
        },
    )
}
