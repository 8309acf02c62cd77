//! `redact` on text with a real key inside: the key must never survive. Also `redact` on
//! arbitrary text never panics and leaves no `sk-` followed by 16 or more alphanumerics.
#![no_main]

mod common;

use apikeyd::domain::key_format::redact;
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    before: String,
    body: [u8; 43],
    after: String,
}

fuzz_target!(|input: Input| {
    let key = common::make_key(&input.body);
    let text = format!("{}{}{}", input.before, key, input.after);
    let out = redact(&text);
    assert!(!out.contains(&key), "key survived redact: {text:?} -> {out:?}");
    let out = redact(&input.before);
    let bytes = out.as_bytes();
    for (i, _) in out.match_indices("sk-") {
        let run = bytes[i + 3..].iter().take_while(|b| b.is_ascii_alphanumeric()).count();
        assert!(run < 16, "a long sk- run survived: {:?} -> {out:?}", input.before);
    }
});
