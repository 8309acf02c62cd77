//! The administration commands: each parses its arguments into the core's types, makes one
//! call through `service::manage` as the operator, and prints the answer as a table, or as
//! the JSON the HTTP API would give with `--json`.

use std::error::Error;
use std::io::{BufRead, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use uuid::Uuid;

use super::output::{print_json, Progress, Table};
use super::{as_operator, CliResult, DbArg, PrefixArg};
use crate::config::{MAX_PAGE_SIZE, SEED_CHUNK};
use crate::domain::grants::{Access, GrantBody, GrantPath, Grants};
use crate::domain::key_format::{self, ApiKey, KeyHash};
use crate::domain::limits::{parse_allowlist, Cidr, Credits, LimitSettings, RateLimit, Refill, RefillInterval};
use crate::domain::model::{Action, KeyId, KeyRecord, Meta, Standing, Status};
use crate::domain::new_key::{NewKey, Owner, Title};
use crate::domain::timestamp::{parse_duration, Timestamp};
use crate::http::bodies::{AuditEventView, KeyView};
use crate::service::audit::AuditQuery;
use crate::service::import::ImportedKey;
use crate::service::lifecycle::KeyUpdate;
use crate::service::manage::{KeyQuery, PageRequest};
use crate::service::scope::KeyRef;

/// `--db` and `--json`, which every command takes.
#[derive(Args, Debug, Clone)]
pub struct Common {
    #[command(flatten)]
    db: DbArg,
    /// Print JSON (as the HTTP API answers) instead of a table.
    #[arg(long)]
    json: bool,
}

/// A key's limits, as `keys create` and `keys update` take them.
#[derive(Args, Debug, Clone, Default)]
pub struct LimitArgs {
    /// Rate limit: at most N accepted verifications per S seconds, as N/S (e.g. 100/60).
    #[arg(long, value_name = "N/S", conflicts_with = "no_rate_limit")]
    rate_limit: Option<String>,
    /// Remove the rate limit (update only).
    #[arg(long)]
    no_rate_limit: bool,
    /// Usage credits (each accepted verification spends its cost, 1 by default).
    #[arg(long, value_name = "N", conflicts_with = "no_credits")]
    credits: Option<u64>,
    /// Refill of the credits: AMOUNT/daily or AMOUNT/monthly (at 00:00 UTC), with --credits.
    #[arg(long, value_name = "AMOUNT/INTERVAL", requires = "credits")]
    refill: Option<String>,
    /// Remove the credits (update only).
    #[arg(long)]
    no_credits: bool,
    /// A network the key may be used from, IPv4 or IPv6 CIDR (repeatable; replaces them all).
    #[arg(long = "allow-ip", value_name = "CIDR", conflicts_with = "no_allowed_ips")]
    allowed_ips: Vec<String>,
    /// Remove the IP allowlist (update only).
    #[arg(long)]
    no_allowed_ips: bool,
}

impl LimitArgs {
    /// What the flags change: `None` leaves a limit as it is; `Some(None)` removes it.
    #[allow(clippy::type_complexity)]
    fn parse(
        &self,
    ) -> Result<(Option<Option<RateLimit>>, Option<Option<Credits>>, Option<Option<Vec<Cidr>>>), Box<dyn Error>> {
        let rate = match (&self.rate_limit, self.no_rate_limit) {
            (_, true) => Some(None),
            (None, false) => None,
            (Some(text), false) => {
                let (n, s) = text.split_once('/').ok_or("--rate-limit: expected N/S, e.g. 100/60")?;
                let limit = RateLimit {
                    limit: n.trim().parse().map_err(|_| "--rate-limit: N must be a whole number")?,
                    window_seconds: s
                        .trim()
                        .trim_end_matches('s')
                        .parse()
                        .map_err(|_| "--rate-limit: S must be seconds")?,
                };
                Some(Some(limit.check().map_err(|e| format!("--rate-limit: {e}"))?))
            }
        };
        let refill = self
            .refill
            .as_deref()
            .map(|text| -> Result<Refill, Box<dyn Error>> {
                let (amount, interval) =
                    text.split_once('/').ok_or("--refill: expected AMOUNT/daily or AMOUNT/monthly")?;
                let interval = match interval.trim() {
                    "daily" => RefillInterval::Daily,
                    "monthly" => RefillInterval::Monthly,
                    _ => return Err("--refill: the interval is daily or monthly".into()),
                };
                Ok(Refill {
                    amount: amount.trim().parse().map_err(|_| "--refill: AMOUNT must be a whole number")?,
                    interval,
                })
            })
            .transpose()?;
        let credits = match (self.credits, self.no_credits) {
            (_, true) => Some(None),
            (None, false) => None,
            (Some(remaining), false) => {
                Some(Some(Credits { remaining, refill }.check().map_err(|e| format!("--credits: {e}"))?))
            }
        };
        let ips = match (self.allowed_ips.is_empty(), self.no_allowed_ips) {
            (_, true) => Some(None),
            (true, false) => None,
            (false, false) => Some(Some(parse_allowlist(&self.allowed_ips).map_err(|e| format!("--allow-ip: {e}"))?)),
        };
        Ok((rate, credits, ips))
    }

    /// The limits of a new key (the `--no-…` flags mean nothing there).
    fn for_new_key(&self) -> Result<LimitSettings, Box<dyn Error>> {
        if self.no_rate_limit || self.no_credits || self.no_allowed_ips {
            return Err("--no-rate-limit, --no-credits and --no-allowed-ips are for keys update".into());
        }
        let (rate, credits, ips) = self.parse()?;
        Ok(LimitSettings { rate_limit: rate.flatten(), credits: credits.flatten(), allowed_ips: ips.flatten() })
    }
}

/// `apikeyd keys …`.
#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create a key and print it once.
    Create {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        prefix: PrefixArg,
        /// Label.
        #[arg(long)]
        title: String,
        /// ACCESS:PATH, e.g. write:/uploads (repeatable). Default: read_write:/.
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// RFC 3339 expiry.
        #[arg(long)]
        expires_at: Option<String>,
        /// Who the key belongs to.
        #[arg(long)]
        owner: Option<String>,
        /// Metadata: a JSON object.
        #[arg(long)]
        meta: Option<String>,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Create many keys at once (for load tests and benchmarks); prints each key once, one
    /// per line, after the transaction holding it has committed.
    Seed {
        #[command(flatten)]
        db: DbArg,
        #[command(flatten)]
        prefix: PrefixArg,
        /// How many keys.
        #[arg(long)]
        count: u64,
        /// ACCESS:PATH, e.g. read:/data (repeatable). Default: read_write:/.
        #[arg(long = "grant")]
        grants: Vec<String>,
    },
    /// List keys, newest first (metadata only).
    List {
        #[command(flatten)]
        common: Common,
        /// Only keys with this status (active, revoked, deleted).
        #[arg(long)]
        status: Option<String>,
        /// Only keys expiring within this long (7d, 12h, 30m).
        #[arg(long)]
        expiring: Option<String>,
        /// Only keys unused for this long (never used: since created).
        #[arg(long)]
        unused: Option<String>,
        /// Only keys with this owner.
        #[arg(long)]
        owner: Option<String>,
        /// Only keys whose title or prefix contains this text.
        #[arg(long)]
        q: Option<String>,
    },
    /// Show one key's metadata.
    Get {
        #[command(flatten)]
        common: Common,
        /// The key's numeric id.
        id: String,
    },
    /// Change a key's title, grants, expiry, owner, metadata or limits.
    Update {
        #[command(flatten)]
        common: Common,
        /// The key's numeric id.
        id: String,
        /// New label.
        #[arg(long)]
        title: Option<String>,
        /// New grants, ACCESS:PATH (repeatable; replaces them all).
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// New RFC 3339 expiry.
        #[arg(long, conflicts_with = "no_expiry")]
        expires_at: Option<String>,
        /// Remove the expiry.
        #[arg(long)]
        no_expiry: bool,
        /// New owner.
        #[arg(long, conflicts_with = "no_owner")]
        owner: Option<String>,
        /// Remove the owner.
        #[arg(long)]
        no_owner: bool,
        /// New metadata: a JSON object.
        #[arg(long, conflicts_with = "no_meta")]
        meta: Option<String>,
        /// Remove the metadata.
        #[arg(long)]
        no_meta: bool,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Turn a key off until it is enabled again (it verifies DISABLED).
    Disable {
        #[command(flatten)]
        common: Common,
        /// The key's numeric id.
        id: String,
    },
    /// Turn a disabled key on again.
    Enable {
        #[command(flatten)]
        common: Common,
        /// The key's numeric id.
        id: String,
    },
    /// Replace a key by a new one, printed once; the old one works for the grace period.
    Rotate {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        prefix: PrefixArg,
        /// The key's numeric id.
        id: String,
        /// Seconds the old key keeps working (0 to 2,592,000).
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=crate::config::MAX_GRACE_SECONDS))]
        grace: u64,
    },
    /// Revoke a key by numeric id.
    Revoke {
        #[command(flatten)]
        common: Common,
        /// The key's numeric id.
        id: String,
    },
    /// Delete a key by numeric id: its value can never verify again.
    Delete {
        #[command(flatten)]
        common: Common,
        /// The key's numeric id.
        id: String,
    },
    /// Import keys from a JSON Lines file, all or nothing: each line {"key": "<plaintext>"}
    /// or {"sha256": "<hex>"}, with optional title, grants, expires_at, owner, meta and
    /// application_id.
    Import {
        #[command(flatten)]
        common: Common,
        /// The file (`-` for standard input).
        file: PathBuf,
    },
}

/// `apikeyd applications …`.
#[derive(Subcommand, Debug)]
pub enum ApplicationsCommand {
    /// List applications, newest first.
    List {
        #[command(flatten)]
        common: Common,
    },
    /// Create an application.
    Create {
        #[command(flatten)]
        common: Common,
        /// Its name.
        name: String,
    },
}

/// `apikeyd audit`.
#[derive(Args, Debug)]
pub struct AuditArgs {
    #[command(flatten)]
    common: Common,
    /// Only rows of this key (numeric id).
    #[arg(long)]
    key: Option<String>,
    /// Only this action (create, revoke, delete, update, disable, enable, rotate, import,
    /// create_application).
    #[arg(long)]
    action: Option<String>,
    /// Only rows at or after this RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    /// At most this many rows.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_PAGE_SIZE)))]
    limit: u32,
}

/// Runs a `keys` command.
pub fn keys(command: KeysCommand) -> CliResult {
    match command {
        KeysCommand::Create { common, prefix, title, grants, expires_at, owner, meta, limits } => {
            let mut new =
                NewKey::with(title_arg(&title)?, grants_or_root(&grants)?, time_arg("expires-at", expires_at)?);
            new.owner = owner.as_deref().map(owner_arg).transpose()?;
            new.meta = meta.as_deref().map(meta_arg).transpose()?;
            new.limits = limits.for_new_key()?;
            let made = as_operator(&common.db, &prefix.key_prefix, async |m| Ok(m.create_key(new).await?))?;
            if common.json {
                print_json(
                    &serde_json::json!({ "key": KeyView::new(&made.record, Timestamp::now()), "api_key": made.key.expose() }),
                )?;
            } else {
                println!("{}", made.key.expose());
                eprintln!("created key {} ({}); this is the only time it is shown", made.record.id, made.record.prefix);
            }
            Ok(())
        }
        KeysCommand::Seed { db, prefix, count, grants } => seed(&db, &prefix, count, &grants),
        KeysCommand::List { common, status, expiring, unused, owner, q } => {
            let query = KeyQuery {
                application: None,
                status: status
                    .as_deref()
                    .map(|s| Status::parse(s).ok_or("--status is active, revoked or deleted"))
                    .transpose()?,
                owner,
                text: q,
                expiring_within_ms: expiring
                    .as_deref()
                    .map(parse_duration)
                    .transpose()
                    .map_err(|e| format!("--expiring: {e}"))?,
                unused_for_ms: unused
                    .as_deref()
                    .map(parse_duration)
                    .transpose()
                    .map_err(|e| format!("--unused: {e}"))?,
            };
            let all = as_operator(&common.db, key_format::PREFIX, async |m| {
                let mut all = Vec::new();
                let mut cursor = None;
                loop {
                    let page = m.list_keys(query.clone(), PageRequest { limit: MAX_PAGE_SIZE, cursor }).await?;
                    let last = page.keys.last().map(|k| k.id.0);
                    all.extend(page.keys);
                    match (page.next_cursor, last) {
                        (Some(_), Some(last)) => cursor = Some(last),
                        _ => return Ok(all),
                    }
                }
            })?;
            show_keys(&all, common.json)
        }
        KeysCommand::Get { common, id } => {
            let id = id_arg(&id)?;
            let record = as_operator(&common.db, key_format::PREFIX, async |m| Ok(m.get_key(KeyRef::Id(id)).await?))?;
            show_keys(&[record], common.json)
        }
        KeysCommand::Update {
            common,
            id,
            title,
            grants,
            expires_at,
            no_expiry,
            owner,
            no_owner,
            meta,
            no_meta,
            limits,
        } => {
            let (rate_limit, credits, allowed_ips) = limits.parse()?;
            let update = KeyUpdate {
                title: title.as_deref().map(title_arg).transpose()?,
                grants: if grants.is_empty() { None } else { Some(parse_grant_args(&grants)?) },
                expires_at: if no_expiry { Some(None) } else { time_arg("expires-at", expires_at)?.map(Some) },
                owner: if no_owner { Some(None) } else { owner.as_deref().map(owner_arg).transpose()?.map(Some) },
                meta: if no_meta { Some(None) } else { meta.as_deref().map(meta_arg).transpose()?.map(Some) },
                enabled: None,
                rate_limit,
                credits,
                allowed_ips,
            };
            change(&common, &id, update)
        }
        KeysCommand::Disable { common, id } => {
            change(&common, &id, KeyUpdate { enabled: Some(false), ..KeyUpdate::default() })
        }
        KeysCommand::Enable { common, id } => {
            change(&common, &id, KeyUpdate { enabled: Some(true), ..KeyUpdate::default() })
        }
        KeysCommand::Rotate { common, prefix, id, grace } => {
            let id = id_arg(&id)?;
            let made = as_operator(&common.db, &prefix.key_prefix, async |m| {
                Ok(m.rotate_key(KeyRef::Id(id), grace * 1000).await?)
            })?;
            if common.json {
                print_json(
                    &serde_json::json!({ "key": KeyView::new(&made.record, Timestamp::now()), "api_key": made.key.expose() }),
                )?;
            } else {
                println!("{}", made.key.expose());
                eprintln!(
                    "rotated key {id} to {} ({}); the new key is shown only this once",
                    made.record.id, made.record.prefix
                );
            }
            Ok(())
        }
        KeysCommand::Revoke { common, id } => {
            let id = id_arg(&id)?;
            let record =
                as_operator(&common.db, key_format::PREFIX, async |m| Ok(m.revoke_key(KeyRef::Id(id)).await?))?;
            if common.json {
                return show_keys(&[record], true);
            }
            println!("revoked key {} ({})", record.id, record.prefix);
            Ok(())
        }
        KeysCommand::Delete { common, id } => {
            let id = id_arg(&id)?;
            let record =
                as_operator(&common.db, key_format::PREFIX, async |m| Ok(m.delete_key(KeyRef::Id(id)).await?))?;
            if common.json {
                return show_keys(&[record], true);
            }
            println!("deleted key {} ({})", record.id, record.prefix);
            Ok(())
        }
        KeysCommand::Import { common, file } => import(&common, &file),
    }
}

/// Runs an `applications` command.
pub fn applications(command: ApplicationsCommand) -> CliResult {
    match command {
        ApplicationsCommand::List { common } => {
            let apps = as_operator(&common.db, key_format::PREFIX, async |m| Ok(m.list_applications().await?))?;
            if common.json {
                return print_json(&apps);
            }
            let mut table = Table::new(&["ID", "CREATED", "NAME"]);
            for a in &apps {
                table.row(vec![a.uuid.to_string(), a.created_at.to_string(), a.name.clone()]);
            }
            print!("{}", table.render());
            Ok(())
        }
        ApplicationsCommand::Create { common, name } => {
            let name = Title::parse(&name).map_err(|e| format!("name: {e}"))?;
            let app = as_operator(&common.db, key_format::PREFIX, async |m| Ok(m.create_application(name).await?))?;
            if common.json {
                return print_json(&app);
            }
            println!("{}", app.uuid);
            Ok(())
        }
    }
}

/// Runs `audit`.
pub fn audit(args: AuditArgs) -> CliResult {
    let query = AuditQuery {
        key: args.key.as_deref().map(id_arg).transpose()?,
        action: args
            .action
            .as_deref()
            .map(|a| Action::parse(a).ok_or_else(|| format!("--action {a}: not an action")))
            .transpose()?,
        since: time_arg("since", args.since)?,
    };
    let limit = args.limit;
    let page = as_operator(&args.common.db, key_format::PREFIX, async |m| {
        Ok(m.list_audit(query, PageRequest { limit, cursor: None }).await?)
    })?;
    let events: Vec<AuditEventView> = page.events.iter().map(AuditEventView::new).collect();
    if args.common.json {
        return print_json(&events);
    }
    let mut table = Table::new(&["ID", "AT", "ACTION", "KEY", "ACTOR", "CHANGES"]);
    for e in &page.events {
        let key = e
            .key_id
            .map_or_else(|| e.application_uuid.map_or("-".to_owned(), |a| format!("app {a}")), |k| k.to_string());
        table.row(vec![
            e.id.to_string(),
            e.at.to_string(),
            e.action.as_str().to_owned(),
            key,
            e.actor_key_id.map_or("-".to_owned(), |k| k.to_string()),
            e.changes.as_ref().map_or(String::new(), |c| c.to_string()),
        ]);
    }
    print!("{}", table.render());
    Ok(())
}

fn change(common: &Common, id: &str, update: KeyUpdate) -> CliResult {
    let id = id_arg(id)?;
    let record =
        as_operator(&common.db, key_format::PREFIX, async |m| Ok(m.update_key(KeyRef::Id(id), update).await?))?;
    show_keys(&[record], common.json)
}

fn seed(db: &DbArg, prefix: &PrefixArg, count: u64, grant_args: &[String]) -> CliResult {
    let grants = grants_or_root(grant_args)?;
    let title = Title::parse("seeded")?;
    let progress = Progress::new("seeding", count);
    as_operator(db, &prefix.key_prefix, async |m| {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let mut done = 0;
        while done < count {
            let n = (SEED_CHUNK as u64).min(count - done);
            let batch = (0..n).map(|_| NewKey::with(title.clone(), grants.clone(), None)).collect();
            // Printed only after the transaction holding them has committed.
            for made in m.create_keys(batch).await? {
                writeln!(out, "{}", made.key.expose())?;
            }
            done += n;
            progress.update(done);
        }
        out.flush()?;
        progress.finish();
        Ok(())
    })
}

/// One line of an import file.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportLine {
    key: Option<String>,
    sha256: Option<String>,
    title: Option<String>,
    grants: Option<Vec<GrantBody>>,
    expires_at: Option<String>,
    owner: Option<String>,
    meta: Option<Box<serde_json::value::RawValue>>,
    application_id: Option<Uuid>,
}

fn import(common: &Common, file: &std::path::Path) -> CliResult {
    let reader: Box<dyn BufRead> = if file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?))
    };
    let started = std::time::Instant::now();
    let mut keys = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let n = i + 1;
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        keys.push(import_line(n, &line).map_err(|e| format!("line {n}: {e}"))?);
    }
    let progress = Progress::new("importing", keys.len() as u64);
    progress.update(0);
    let count = as_operator(&common.db, key_format::PREFIX, async |m| Ok(m.import_keys(keys).await?))?;
    progress.update(count as u64);
    progress.finish();
    let elapsed = started.elapsed().as_secs_f64();
    if common.json {
        return print_json(&serde_json::json!({ "imported": count, "seconds": elapsed }));
    }
    println!("imported {count} keys in {elapsed:.2} s ({:.0} keys/s)", count as f64 / elapsed.max(1e-9));
    Ok(())
}

/// One line of an import file as the core takes it. Never echoes a plaintext in an error.
fn import_line(line: usize, text: &str) -> Result<ImportedKey, String> {
    let parsed: ImportLine = serde_json::from_str(text).map_err(|e| key_format::redact(&e.to_string()))?;
    let (hash, prefix) = match (&parsed.key, &parsed.sha256) {
        (Some(key), None) => match ApiKey::parse(key) {
            Ok(ours) => (ours.hash(), ours.display_prefix()),
            Err(_) if key_format::has_key_shape(key) => {
                return Err("key has this service's shape but its checksum fails".into())
            }
            Err(_) if key_format::may_be_imported(key) => {
                // Another service's format: show as little of it as a list needs.
                let shown: String = key.chars().take((key.len() / 6).min(8)).collect();
                (KeyHash::of_text(key), shown)
            }
            Err(_) => {
                return Err(format!(
                    "key must be {} to {} printable characters",
                    key_format::IMPORTED_KEY_LEN.start(),
                    key_format::IMPORTED_KEY_LEN.end()
                ))
            }
        },
        (None, Some(hex)) => (sha256_hex(hex)?, "(imported)".to_owned()),
        _ => return Err("exactly one of key and sha256 is required".into()),
    };
    let title = match &parsed.title {
        Some(t) => Title::parse(t).map_err(|e| format!("title: {e}"))?,
        None => Title::parse("imported").map_err(|e| e.to_string())?,
    };
    let new =
        NewKey::parse(title, parsed.grants.as_deref(), parsed.expires_at.as_deref()).map_err(|e| e.to_string())?;
    Ok(ImportedKey {
        line,
        hash,
        prefix,
        title: new.title,
        grants: new.grants,
        expires_at: new.expires_at,
        owner: parsed.owner.as_deref().map(Owner::parse).transpose().map_err(|e| e.to_string())?,
        meta: parsed.meta.as_deref().map(|m| Meta::parse(m.get())).transpose().map_err(|e| e.to_string())?,
        application: parsed.application_id,
    })
}

fn sha256_hex(hex: &str) -> Result<KeyHash, String> {
    let bad = || "sha256 must be 64 hexadecimal digits".to_owned();
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16).map_err(|_| bad())?;
    }
    Ok(KeyHash(out))
}

fn show_keys(keys: &[KeyRecord], json: bool) -> CliResult {
    let now = Timestamp::now();
    if json {
        let views: Vec<KeyView> = keys.iter().map(|k| KeyView::new(k, now)).collect();
        return if views.len() == 1 { print_json(&views[0]) } else { print_json(&views) };
    }
    let mut table = Table::new(&["ID", "UUID", "STATUS", "PREFIX", "GRANTS", "OWNER", "EXPIRES", "TITLE"]);
    for k in keys {
        let grants: Vec<String> = k.grants.iter().map(|g| format!("{}:{}", g.access.as_str(), g.path)).collect();
        let status = match k.standing(now) {
            Standing::Expired => "expired",
            Standing::Disabled => "disabled",
            _ => k.status.as_str(),
        };
        table.row(vec![
            k.id.to_string(),
            k.uuid.to_string(),
            status.to_owned(),
            k.prefix.clone(),
            grants.join(","),
            k.owner.clone().unwrap_or_else(|| "-".to_owned()),
            k.expires_at.map_or("never".to_owned(), |t| t.to_string()),
            k.title.clone(),
        ]);
    }
    print!("{}", table.render());
    Ok(())
}

fn id_arg(id: &str) -> Result<KeyId, Box<dyn Error>> {
    Ok(KeyId::parse(id).ok_or("ID must be a positive integer")?)
}

fn title_arg(title: &str) -> Result<Title, Box<dyn Error>> {
    Ok(Title::parse(title).map_err(|e| format!("--title: {e}"))?)
}

fn owner_arg(owner: &str) -> Result<Owner, Box<dyn Error>> {
    Ok(Owner::parse(owner).map_err(|e| format!("--owner: {e}"))?)
}

fn meta_arg(meta: &str) -> Result<Meta, Box<dyn Error>> {
    Ok(Meta::parse(meta).map_err(|e| format!("--meta: {e}"))?)
}

fn time_arg(name: &str, value: Option<String>) -> Result<Option<Timestamp>, Box<dyn Error>> {
    Ok(value.as_deref().map(Timestamp::parse_rfc3339).transpose().map_err(|e| format!("--{name}: {e}"))?)
}

fn grants_or_root(args: &[String]) -> Result<Grants, Box<dyn Error>> {
    if args.is_empty() {
        Ok(Grants::root())
    } else {
        parse_grant_args(args)
    }
}

/// `access:path` pairs from `--grant`.
fn parse_grant_args(args: &[String]) -> Result<Grants, Box<dyn Error>> {
    let mut bodies = Vec::with_capacity(args.len());
    for arg in args {
        let (access, path) = arg.split_once(':').ok_or_else(|| format!("--grant {arg}: expected ACCESS:PATH"))?;
        let access =
            Access::parse(access).ok_or_else(|| format!("--grant {arg}: access is read, write or read_write"))?;
        let path = GrantPath::parse(path).map_err(|e| format!("--grant {arg}: {e}"))?;
        bodies.push(GrantBody { path: path.as_str().to_owned(), access });
    }
    Ok(Grants::from_bodies(&bodies)?)
}
