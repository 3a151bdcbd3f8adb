//! `jarvisctl pull`: every image the unit files name, each once.

use crate::harness::*;

#[test]
fn pull_names_every_image_the_units_name_and_fails_for_one_it_cannot_get() {
    if !root() {
        return;
    }
    let j = Jarvis::start(&[("svc", "[native]\ncommand = [\"sleep\", \"1000\"]\n")]);
    let units = j.units.to_str().unwrap().to_string();
    let out = j.ok(&["pull", "--units", &units]);
    assert!(out.contains("names an image"), "{out}");
    // Nothing listens on port 1: both pulls fail, each said once.
    for (name, image) in [
        ("a", "127.0.0.1:1/x/a:1"),
        ("b", "127.0.0.1:1/x/b:1"),
        ("c", "127.0.0.1:1/x/a:1"),
    ] {
        j.write_unit(name, &format!("[container]\nimage = \"{image}\"\n"));
    }
    let out = j.ctl(&["pull", "--units", &units, "--json"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.matches("pull 127.0.0.1:1/x/a:1:").count(), 1, "{err}");
    assert_eq!(err.matches("pull 127.0.0.1:1/x/b:1:").count(), 1, "{err}");
    assert!(err.contains("2 image(s) could not be pulled"), "{err}");
}
