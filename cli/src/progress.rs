//! Pull progress on a terminal: one bar per layer (indicatif); nothing when
//! stderr is not a terminal.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use jarvis_proto::PullProgress;

pub struct Bars {
    multi: Option<MultiProgress>,
    bars: BTreeMap<usize, ProgressBar>,
}

impl Bars {
    pub fn new(wanted: bool) -> Bars {
        let multi = (wanted && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Bars {
            multi,
            bars: BTreeMap::new(),
        }
    }

    pub fn update(&mut self, p: &PullProgress) {
        let Some(multi) = &self.multi else { return };
        let bar = self.bars.entry(p.index).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new(p.total));
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} {msg:>11} [{bar:30}] {bytes:>9}/{total_bytes:9}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            let short = p.layer.strip_prefix("sha256:").unwrap_or(&p.layer);
            bar.set_prefix(format!(
                "layer {}/{} {}",
                p.index + 1,
                p.count,
                &short[..short.len().min(12)]
            ));
            bar
        });
        bar.set_length(p.total);
        bar.set_position(p.done);
        bar.set_message(p.phase.clone());
        if p.phase == "ready" || p.phase == "cached" {
            bar.set_position(p.total);
            bar.finish();
        }
    }

    pub fn finish(&mut self) {
        for bar in self.bars.values() {
            bar.finish();
        }
    }
}

/// A spinner with `message` on stderr while a long request runs; `None`
/// when stderr is not a terminal or it is not `wanted`.
pub fn spinner(wanted: bool, message: &str) -> Option<ProgressBar> {
    if !(wanted && std::io::stderr().is_terminal()) {
        return None;
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("a valid template"),
    );
    bar.set_message(message.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    Some(bar)
}
