//! GPU placement: which GPUs a unit with `[gpu]` gets, or the CPU, or a
//! wait. Pure: the GPU inventory and the promises already made come in as
//! values.
//!
//! Every placed unit is *promised* `min_vram` on each GPU it gets, for as
//! long as it is placed. A GPU admits a unit only when its total memory
//! minus what is promised to other units covers `min_vram`: units never
//! oversubscribe a card, whatever their processes happen to use right now.

use std::collections::BTreeMap;

use jarvis_unit::{Gpu, GpuWant};

/// The GPU and placement types live with the runtimes, which build a
/// run's hardware from them.
pub use jarvis_runtime::gpu::{GpuInfo, Placement, Vendor};

/// What placement decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Place(Placement),
    /// Nothing fits now; the reason says what is missing.
    Wait(String),
}

/// Promises made: GPU id -> unit -> bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    promised: BTreeMap<String, BTreeMap<String, u64>>,
}

impl Ledger {
    pub fn promise(&mut self, unit: &str, placement: &Placement, bytes: u64) {
        for id in placement.ids() {
            self.promised
                .entry(id)
                .or_default()
                .insert(unit.to_string(), bytes);
        }
    }

    pub fn release(&mut self, unit: &str) {
        for units in self.promised.values_mut() {
            units.remove(unit);
        }
        self.promised.retain(|_, u| !u.is_empty());
    }

    /// Everything promised on `gpu`.
    pub fn promised(&self, gpu: &str) -> u64 {
        self.promised
            .get(gpu)
            .map(|u| u.values().sum())
            .unwrap_or(0)
    }

    /// What is promised on `gpu` to units other than `unit`.
    fn promised_to_others(&self, gpu: &str, unit: &str) -> u64 {
        self.promised
            .get(gpu)
            .map(|u| u.iter().filter(|(n, _)| *n != unit).map(|(_, b)| b).sum())
            .unwrap_or(0)
    }

    fn holders(&self, gpu: &str, unit: &str) -> String {
        self.promised
            .get(gpu)
            .map(|u| {
                u.iter()
                    .filter(|(n, _)| *n != unit)
                    .map(|(n, b)| format!("{n} {}", size(*b)))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    }
}

fn size(b: u64) -> String {
    const G: u64 = 1 << 30;
    const M: u64 = 1 << 20;
    if b >= G {
        format!("{:.1}G", b as f64 / G as f64)
    } else {
        format!("{}M", b / M)
    }
}

/// Places `unit` with `want` on the inventory `gpus`, given the promises in
/// `ledger` (its own, if any, do not count against it).
pub fn place(unit: &str, want: &Gpu, gpus: &[GpuInfo], ledger: &Ledger) -> Decision {
    let vendors: &[Vendor] = match want.want {
        GpuWant::Cpu => return Decision::Place(Placement::Cpu),
        GpuWant::Auto => &[Vendor::Nvidia, Vendor::Amd],
        GpuWant::Nvidia => &[Vendor::Nvidia],
        GpuWant::Amd => &[Vendor::Amd],
    };
    let need = want.count.max(1) as usize;
    // The best vendor is the one whose chosen GPUs leave the most room.
    let mut best: Option<(u64, Vendor, Vec<GpuInfo>)> = None;
    let mut why = Vec::new();
    for &vendor in vendors {
        let mut fitting: Vec<(u64, &GpuInfo)> = gpus
            .iter()
            .filter(|g| g.vendor == vendor)
            .filter_map(|g| {
                let free = g
                    .memory_total
                    .saturating_sub(ledger.promised_to_others(&g.id, unit));
                if free >= want.min_vram {
                    Some((free, g))
                } else {
                    let holders = ledger.holders(&g.id, unit);
                    why.push(format!(
                        "{} has {} unpromised{}",
                        g.id,
                        size(free),
                        if holders.is_empty() {
                            String::new()
                        } else {
                            format!(" (promised to {holders})")
                        }
                    ));
                    None
                }
            })
            .collect();
        if fitting.len() < need {
            continue;
        }
        // Most room first; ties by index, for a stable choice.
        fitting.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.index.cmp(&b.1.index)));
        let chosen: Vec<GpuInfo> = fitting
            .iter()
            .take(need)
            .map(|(_, g)| (*g).clone())
            .collect();
        let room = fitting
            .iter()
            .take(need)
            .map(|(f, _)| *f)
            .min()
            .unwrap_or(0);
        if best.as_ref().is_none_or(|(r, _, _)| room > *r) {
            best = Some((room, vendor, chosen));
        }
    }
    if let Some((_, vendor, gpus)) = best {
        return Decision::Place(Placement::Gpus { vendor, gpus });
    }
    if want.want == GpuWant::Auto {
        return Decision::Place(Placement::Cpu);
    }
    let vendor = vendors[0].as_str();
    let have = gpus.iter().filter(|g| vendors.contains(&g.vendor)).count();
    let mut reason = format!(
        "waiting for {need} {} GPU(s) with {} unpromised VRAM",
        if vendor == "nvidia" { "NVIDIA" } else { "AMD" },
        size(want.min_vram)
    );
    if have == 0 {
        reason.push_str(": none found");
    } else if !why.is_empty() {
        reason.push_str(&format!(": {}", why.join("; ")));
    }
    Decision::Wait(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: u64 = 1 << 30;

    fn nv(id: &str, index: u32, total: u64) -> GpuInfo {
        GpuInfo {
            id: id.into(),
            vendor: Vendor::Nvidia,
            index,
            minor: Some(index),
            memory_total: total,
        }
    }

    fn amd(id: &str, index: u32, total: u64) -> GpuInfo {
        GpuInfo {
            id: id.into(),
            vendor: Vendor::Amd,
            index,
            minor: None,
            memory_total: total,
        }
    }

    fn want(want: GpuWant, count: u32, min_vram: u64) -> Gpu {
        Gpu {
            want,
            count,
            min_vram,
            ..Gpu::default()
        }
    }

    fn ids(d: &Decision) -> Vec<String> {
        match d {
            Decision::Place(p) => p.ids(),
            Decision::Wait(r) => panic!("waited: {r}"),
        }
    }

    #[test]
    fn the_budget_never_oversubscribes_a_gpu() {
        let gpus = [nv("GPU-a", 0, 16 * G)];
        let mut ledger = Ledger::default();
        let w = want(GpuWant::Nvidia, 1, 10 * G);
        let d = place("ollama", &w, &gpus, &ledger);
        assert_eq!(ids(&d), vec!["GPU-a"]);
        let Decision::Place(p) = d else {
            unreachable!()
        };
        ledger.promise("ollama", &p, 10 * G);
        // A second unit wanting 10G cannot fit the 6G left: it waits.
        let Decision::Wait(reason) = place("vllm", &w, &gpus, &ledger) else {
            panic!("oversubscribed")
        };
        assert!(
            reason.contains("GPU-a has 6.0G unpromised (promised to ollama 10.0G)"),
            "{reason}"
        );
        // Placing the first again counts its own promise out.
        assert_eq!(ids(&place("ollama", &w, &gpus, &ledger)), vec!["GPU-a"]);
        // Once released, the second fits.
        ledger.release("ollama");
        assert_eq!(ids(&place("vllm", &w, &gpus, &ledger)), vec!["GPU-a"]);
    }

    #[test]
    fn auto_falls_back_to_the_cpu_and_hides_every_gpu() {
        let gpus = [nv("GPU-a", 0, 4 * G)];
        let d = place(
            "ollama",
            &want(GpuWant::Auto, 1, 6 * G),
            &gpus,
            &Ledger::default(),
        );
        assert_eq!(d, Decision::Place(Placement::Cpu));
        let env = Placement::Cpu.env();
        assert!(env.contains(&("CUDA_VISIBLE_DEVICES".into(), "-1".into())));
        assert!(env.contains(&("HIP_VISIBLE_DEVICES".into(), "-1".into())));
        let d = place("x", &want(GpuWant::Auto, 1, 0), &[], &Ledger::default());
        assert_eq!(d, Decision::Place(Placement::Cpu));
    }

    #[test]
    fn auto_picks_the_gpu_with_the_most_room() {
        let gpus = [
            nv("GPU-small", 0, 8 * G),
            nv("GPU-big", 1, 80 * G),
            amd("0000:03:00.0", 0, 24 * G),
        ];
        let d = place(
            "ollama",
            &want(GpuWant::Auto, 1, 6 * G),
            &gpus,
            &Ledger::default(),
        );
        assert_eq!(ids(&d), vec!["GPU-big"]);
        let Decision::Place(p) = d else {
            unreachable!()
        };
        assert_eq!(
            p.env(),
            vec![
                ("CUDA_VISIBLE_DEVICES".into(), "GPU-big".into()),
                ("CUDA_DEVICE_ORDER".into(), "PCI_BUS_ID".into()),
                ("NVIDIA_VISIBLE_DEVICES".into(), "GPU-big".into()),
            ]
        );
    }

    #[test]
    fn a_vendor_is_honoured_and_amd_pins_by_index() {
        let gpus = [
            nv("GPU-a", 0, 80 * G),
            amd("0000:03:00.0", 0, 16 * G),
            amd("0000:04:00.0", 1, 24 * G),
        ];
        let d = place(
            "sd",
            &want(GpuWant::Amd, 1, 8 * G),
            &gpus,
            &Ledger::default(),
        );
        let Decision::Place(p) = d else { panic!() };
        assert_eq!(p.ids(), vec!["0000:04:00.0"]);
        assert!(p
            .env()
            .contains(&("HIP_VISIBLE_DEVICES".into(), "1".into())));
        assert!(p
            .env()
            .contains(&("ROCR_VISIBLE_DEVICES".into(), "1".into())));
    }

    #[test]
    fn count_needs_that_many_fitting_gpus() {
        let gpus = [
            nv("GPU-a", 0, 80 * G),
            nv("GPU-b", 1, 80 * G),
            nv("GPU-c", 2, 8 * G),
        ];
        let d = place(
            "big",
            &want(GpuWant::Nvidia, 2, 40 * G),
            &gpus,
            &Ledger::default(),
        );
        let mut got = ids(&d);
        got.sort();
        assert_eq!(got, vec!["GPU-a", "GPU-b"]);
        let d = place(
            "bigger",
            &want(GpuWant::Nvidia, 3, 40 * G),
            &gpus,
            &Ledger::default(),
        );
        assert!(matches!(d, Decision::Wait(r) if r.contains("3 NVIDIA GPU(s)")));
    }

    #[test]
    fn a_missing_vendor_waits_and_says_so() {
        let d = place("x", &want(GpuWant::Nvidia, 1, G), &[], &Ledger::default());
        assert_eq!(
            d,
            Decision::Wait(
                "waiting for 1 NVIDIA GPU(s) with 1.0G unpromised VRAM: none found".into()
            )
        );
    }
}
