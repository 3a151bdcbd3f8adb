//! The `KEY=VALUE` env-file grammar (a unit's `env_file`, compose's `.env`)
//! on any text.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match jarvis_unit::envfile::parse(&text) {
        Ok(entries) => {
            // The same text read after other variables gives the same entries.
            let mut vars = BTreeMap::from([("HOME".to_string(), "/root".to_string())]);
            let again = jarvis_unit::envfile::parse_with(&text, &mut vars, None)
                .expect("parse_with without interpolation agrees with parse");
            assert_eq!(entries.len(), again.len());
        }
        Err(e) => {
            assert!(e.line >= 1 && e.col >= 1, "error without a position: {e:?}");
            let _ = e.kind.to_string();
        }
    }
});
