//! The minting rule: if `a.within(&b)`, everything `a` allows `b` allows too, on every probe
//! path (grant paths, their children and siblings, and arbitrary extra paths); and since
//! every grant path of `a` is probed, the converse holds as well.
#![no_main]

use apikeyd::domain::grants::{Access, GrantBody, GrantPath, Grants, MAX_GRANTS};
use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;

const SEGMENTS: &[&str] = &["a", "b", "ab", "a b", "é", ".a", "a."];

/// A path of 0..=4 segments from a small alphabet, so that grants overlap often.
fn small_path(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    let depth = u.int_in_range(0..=4)?;
    let mut p = String::new();
    for _ in 0..depth {
        p.push('/');
        p.push_str(u.choose(SEGMENTS)?);
    }
    if p.is_empty() || u.ratio(1, 8)? {
        p.push('/');
    }
    Ok(p)
}

fn access(u: &mut Unstructured<'_>) -> arbitrary::Result<Access> {
    Ok(*u.choose(&[Access::Read, Access::Write, Access::ReadWrite])?)
}

fn bodies(u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<GrantBody>> {
    let n = u.int_in_range(1..=MAX_GRANTS)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        // Mostly small-alphabet paths; sometimes arbitrary text (usually refused).
        let path = if u.ratio(1, 16)? { String::arbitrary(u)? } else { small_path(u)? };
        out.push(GrantBody { path, access: access(u)? });
        if u.is_empty() {
            break;
        }
    }
    Ok(out)
}

fn check(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let (Ok(a), Ok(b)) = (Grants::from_bodies(&bodies(u)?), Grants::from_bodies(&bodies(u)?)) else {
        return Ok(());
    };
    let mut probes: Vec<GrantPath> = Vec::new();
    for g in a.iter().chain(b.iter()) {
        probes.push(g.path.clone());
        for seg in SEGMENTS {
            let below = if g.path.as_str() == "/" { format!("/{seg}") } else { format!("{}/{seg}", g.path) };
            probes.extend(GrantPath::parse(&below).ok());
            probes.extend(GrantPath::parse(&format!("{}{seg}", g.path)).ok());
        }
    }
    for _ in 0..u.int_in_range(0..=4)? {
        probes.extend(GrantPath::parse(&small_path(u)?).ok());
    }
    let escalation = probes.iter().find_map(|p| {
        [Access::Read, Access::Write, Access::ReadWrite]
            .into_iter()
            .find(|&acc| a.allows(p, acc) && !b.allows(p, acc))
            .map(|acc| (p.clone(), acc))
    });
    if a.within(&b) {
        assert!(escalation.is_none(), "a within b, yet a allows {escalation:?} and b does not\na={a:?}\nb={b:?}");
    } else {
        assert!(escalation.is_some(), "a allows nothing b refuses, yet is not within b\na={a:?}\nb={b:?}");
    }
    assert!(a.within(&a) && b.within(&b));
    assert!(a.within(&Grants::root()));
    assert_eq!(Grants::from_bodies(&a.to_bodies()).as_ref(), Ok(&a));
    for p in &probes {
        assert_eq!(a.allows(p, Access::ReadWrite), a.allows(p, Access::Read) && a.allows(p, Access::Write));
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = check(&mut Unstructured::new(data));
});
