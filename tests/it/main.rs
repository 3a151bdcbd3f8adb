//! jarvisd and jarvisctl end to end: real processes in real cgroups, as root.
//! Each test starts its own daemon (see `harness`), and every wait is
//! bounded.

mod harness;

mod apply;
mod bench;
mod boot_fallback;
mod chaos;
mod cli;
mod compose;
mod config;
mod containers;
mod control_limits;
mod dashboard;
mod device_rules;
mod events;
mod exec;
mod export;
mod export_nomad;
mod faults;
mod follow;
mod gitops_triggers;
mod gpu_fallback;
mod hardware;
mod health;
mod http_api;
mod limits;
mod logs;
mod network;
mod newuser;
mod nixos;
mod notify;
mod pull;
mod registry_auth;
mod secrets_age;
mod supervise;
mod volumes;
