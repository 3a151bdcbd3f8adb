//! Image references: `busybox`, `docker.io/homeassistant/home-assistant:2024.12`,
//! `registry.lan:5000/ns/app:1`, `app@sha256:...`, `oci-layout:/srv/images/app:1`.
//!
//! The grammar is the unit format's ([`jarvis_unit::parse_image_reference`],
//! built on `oci_spec::distribution::Reference`), so a unit file that
//! validates names an image that pulls, and the other way round.

use crate::error::{Error, Result};

/// A parsed image reference; see [`jarvis_unit::ImageReference`]. Its
/// [`Display`](std::fmt::Display) form is canonical: the store keys images
/// by it.
pub use jarvis_unit::ImageReference as Reference;
/// The prefix of a reference to a local OCI image layout directory.
pub use jarvis_unit::OCI_LAYOUT_PREFIX;

/// Parse an image reference. See [`Reference`] for the accepted forms.
///
/// ```
/// use jarvis_image::parse_reference;
/// assert_eq!(parse_reference("busybox").unwrap().to_string(), "docker.io/library/busybox:latest");
/// assert_eq!(
///     parse_reference("oci-layout:/srv/img:1.0").unwrap().to_string(),
///     "oci-layout:/srv/img:1.0"
/// );
/// ```
pub fn parse_reference(s: &str) -> Result<Reference> {
    jarvis_unit::parse_image_reference(s).map_err(|reason| Error::Reference {
        input: s.to_string(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn canon(s: &str) -> String {
        parse_reference(s).unwrap().to_string()
    }

    #[test]
    fn registry_references() {
        assert_eq!(canon("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(canon("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(
            canon("docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            canon("index.docker.io/library/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            canon("docker.io/homeassistant/home-assistant:2024.12"),
            "docker.io/homeassistant/home-assistant:2024.12"
        );
        assert_eq!(
            canon("homeassistant/home-assistant"),
            "docker.io/homeassistant/home-assistant:latest"
        );
        assert_eq!(
            canon("registry.lan:5000/ns/app:1.2"),
            "registry.lan:5000/ns/app:1.2"
        );
        assert_eq!(
            canon("127.0.0.1:5000/test/busybox:t"),
            "127.0.0.1:5000/test/busybox:t"
        );
        assert_eq!(canon("localhost:5000/app"), "localhost:5000/app:latest");
        assert_eq!(canon("ghcr.io/a/b/c:x"), "ghcr.io/a/b/c:x");
        let d = "sha256:".to_string() + &"ab".repeat(32);
        assert_eq!(
            canon(&format!("busybox@{d}")),
            format!("docker.io/library/busybox@{d}")
        );
        assert_eq!(
            canon(&format!("busybox:1@{d}")),
            format!("docker.io/library/busybox:1@{d}")
        );
        let r = parse_reference(&format!("busybox@{d}")).unwrap();
        assert_eq!(r.digest(), Some(d.as_str()));
        assert_eq!(r.tag(), None);
        assert_eq!(r.registry(), Some("docker.io"));
    }

    #[test]
    fn bad_references() {
        for s in [
            "",
            " busybox",
            "Busybox",
            "busybox:",
            "a//b",
            "busybox@sha256:abc",
            "busybox@md5:0123456789abcdef0123456789abcdef",
            "oci-layout:relative/dir",
            "oci-layout:/dir:bad tag",
            "oci-layout:/a/../b",
        ] {
            let e = parse_reference(s).unwrap_err();
            assert!(matches!(e, Error::Reference { .. }), "{s:?}: {e}");
        }
        let e = parse_reference("Busybox").unwrap_err().to_string();
        assert!(e.contains("lower-case"), "{e}");
        let upper = "sha256:".to_string() + &"AB".repeat(32);
        assert!(parse_reference(&format!("busybox@{upper}")).is_err());
    }

    #[test]
    fn layout_references() {
        assert_eq!(canon("oci-layout:/srv/img:1.0"), "oci-layout:/srv/img:1.0");
        assert_eq!(canon("oci-layout:/srv/img/"), "oci-layout:/srv/img");
        assert_eq!(
            canon("oci-layout:/srv/my:dir/img:t"),
            "oci-layout:/srv/my:dir/img:t"
        );
        match parse_reference("oci-layout:/srv/img:latest").unwrap() {
            Reference::OciLayout { path, tag } => {
                assert_eq!(path, PathBuf::from("/srv/img"));
                assert_eq!(tag.as_deref(), Some("latest"));
            }
            r => panic!("{r:?}"),
        }
        match parse_reference("oci-layout:/srv/img").unwrap() {
            Reference::OciLayout { tag, .. } => assert_eq!(tag, None),
            r => panic!("{r:?}"),
        }
    }

    /// Validation of `[container] image` and the pull side take and refuse
    /// exactly the same strings.
    #[test]
    fn unit_validation_and_pull_agree() {
        let digest = format!("sha256:{}", "0123456789abcdef".repeat(4));
        let valid = [
            "busybox".to_string(),
            "library/busybox:1.36".into(),
            "ghcr.io/open-webui/open-webui:main".into(),
            format!("localhost:5000/x/y@{digest}"),
            "ollama/ollama".into(),
            "docker.io/homeassistant/home-assistant:2024.12".into(),
            "registry.lan:5000/ns/app:1.2".into(),
            "127.0.0.1:5000/test/busybox:t".into(),
            format!("busybox:1@{digest}"),
            "a__b/c---d.e_f:_tag".into(),
            format!("nginx:{}", "a".repeat(128)),
            "oci-layout:/srv/img:1.0".into(),
            "oci-layout:/srv/img".into(),
            "oci-layout:/srv/my:dir/img:t".into(),
        ];
        let invalid = [
            "".to_string(),
            "Busybox".into(),
            "ghcr.io/Open-WebUI/open-webui".into(),
            "Foo/bar".into(),
            "a b".into(),
            " busybox".into(),
            ":tag".into(),
            "busybox:".into(),
            "a//b".into(),
            "nginx/".into(),
            "/nginx".into(),
            "nginx:a/b".into(),
            "nginx:-rc1".into(),
            "nginx:café".into(),
            format!("nginx:{}", "a".repeat(129)),
            "busybox@sha256:abc".into(),
            "busybox@".into(),
            format!(
                "busybox@{}",
                digest.to_uppercase().replace("SHA256", "sha256")
            ),
            format!("busybox@sha512:{}", "ab".repeat(64)),
            "busybox@md5:0123456789abcdef0123456789abcdef".into(),
            "ghcr.io:0/app".into(),
            "registry.local:99999/app".into(),
            "bad_host.io:5000/app".into(),
            "[::1]:5000/app".into(),
            "http://docker.io/nginx".into(),
            "owner/my+app".into(),
            "oci-layout:".into(),
            "oci-layout:relative/dir".into(),
            "oci-layout:/dir:bad tag".into(),
            "oci-layout:/dir:".into(),
            "oci-layout:/a/../b".into(),
        ];
        let unit_ok = |image: &str| {
            let text = format!(
                "[container]\nimage = {}\n",
                serde_json::to_string(image).unwrap()
            );
            jarvis_unit::parse_unit(std::path::Path::new("units/app.toml"), &text)
                .map(|_| ())
                .map_err(|d| d[0].to_string())
        };
        for (list, want) in [(&valid[..], true), (&invalid[..], false)] {
            for image in list.iter() {
                let pulled = parse_reference(image);
                let validated = unit_ok(image);
                assert_eq!(pulled.is_ok(), want, "pull side on {image:?}: {pulled:?}");
                assert_eq!(
                    validated.is_ok(),
                    want,
                    "unit validation on {image:?}: {validated:?}"
                );
                if let (Err(pull), Err(unit)) = (&pulled, &validated) {
                    // Both say the same thing about it.
                    let Error::Reference { reason, .. } = pull else {
                        panic!("{pull}")
                    };
                    assert!(unit.contains(reason.as_str()), "{unit} / {reason}");
                }
            }
        }
    }
}
