//! Image metadata on any bytes, as a pull or an import reads it: a manifest
//! or an index (the platform chosen, the image checked), an image config, an
//! OCI layout's `index.json` (the manifest chosen by tag), an auth file, and
//! an image reference.
#![no_main]

use jarvis_image::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = fuzzing::manifest(data);
    let _ = fuzzing::config(data);
    let selectors = [
        "app:1.0".to_string(),
        "docker.io/library/app:1.0".to_string(),
        "1.0".to_string(),
    ];
    let _ = fuzzing::layout_index(data, &selectors);
    let _ = fuzzing::layout_index(data, &[]);
    let text = String::from_utf8_lossy(data);
    if let Err(e) = fuzzing::auth(&text, "docker.io", "library/app") {
        assert!(!e.is_empty());
    }
    let _ = fuzzing::auth(&text, "registry.lan:5000", "team/app");
    // A reference: the whole text, and each line of it.
    if text.len() <= 4096 {
        if let Ok(r) = jarvis_image::parse_reference(&text) {
            // Its canonical form parses to itself.
            let again = jarvis_image::parse_reference(&r.to_string())
                .unwrap_or_else(|e| panic!("{r} (from {text:?}) does not parse again: {e}"));
            assert_eq!(again.to_string(), r.to_string());
        }
    }
});
