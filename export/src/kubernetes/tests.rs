//! The Kubernetes export, key by key: units parsed from unit files, the
//! documents read back as YAML.

use std::path::Path;

use serde_json::{json, Value};

use super::*;

fn unit(name: &str, toml: &str) -> Unit {
    jarvis_unit::parse_unit(Path::new(&format!("/units/{name}.toml")), toml)
        .unwrap_or_else(|d| panic!("{name}: {d:?}"))
}

/// The objects of a document, as JSON values.
fn objects(doc: &Document) -> Vec<Value> {
    doc.text
        .split("\n---\n")
        .map(|t| serde_yaml_ng::from_str(t).unwrap_or_else(|e| panic!("{e}: {t}")))
        .collect()
}

fn export_one(u: Unit) -> (Document, Vec<Value>) {
    let out = export(std::slice::from_ref(&u), &Options::default());
    assert!(out.skipped.is_empty(), "{:?}", out.skipped);
    export_with(vec![u], &Options::default())
}

fn export_with(units: Vec<Unit>, opts: &Options) -> (Document, Vec<Value>) {
    let first = units[0].name.clone();
    let out = export(&units, opts);
    let doc = out
        .documents
        .into_iter()
        .find(|d| d.unit.as_deref() == Some(&first))
        .expect("the unit's document");
    let objs = objects(&doc);
    (doc, objs)
}

fn kind<'a>(objs: &'a [Value], kind: &str) -> &'a Value {
    objs.iter()
        .find(|o| o["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {objs:#?}"))
}

fn workload(objs: &[Value]) -> &Value {
    objs.iter()
        .find(|o| {
            matches!(
                o["kind"].as_str(),
                Some("Deployment" | "StatefulSet" | "Job")
            )
        })
        .expect("a workload")
}

fn pod(objs: &[Value]) -> &Value {
    &workload(objs)["spec"]["template"]["spec"]
}

fn container(objs: &[Value]) -> &Value {
    &pod(objs)["containers"][0]
}

const WEB: &str = r#"
description = "the web"
[container]
image = "nginx:1.27"
"#;

#[test]
fn a_native_only_unit_is_skipped_with_why() {
    let n = unit("db", "[native]\ncommand = [\"/usr/bin/db\"]\n");
    let out = export(&[n, unit("web", WEB)], &Options::default());
    assert_eq!(
        out.skipped,
        vec![Skipped {
            unit: "db".into(),
            why: NATIVE_ONLY.into()
        }]
    );
    assert_eq!(out.documents.len(), 1);
    assert_eq!(out.documents[0].name, "web.yaml");
    assert!(out.documents[0]
        .text
        .starts_with("# web: exported by jarvisctl export kubernetes\n# the web\n"));
}

#[test]
fn a_native_unit_with_a_container_form_exports_that_form() {
    let u = unit(
        "ollama",
        r#"
run = "native"
[native]
command = ["/usr/local/bin/ollama", "serve"]
[container]
image = "ollama/ollama:0.5"
command = ["serve"]
"#,
    );
    let (doc, objs) = export_one(u);
    assert!(doc
        .text
        .contains("jarvis runs it natively (run = \"native\")"));
    assert_eq!(container(&objs)["image"], "ollama/ollama:0.5");
    assert_eq!(container(&objs)["args"], json!(["serve"]));
}

#[test]
fn labels_and_the_namespace_are_on_every_object() {
    let u = unit(
        "web",
        r#"
[container]
image = "nginx"
ports = ["8080:80"]
[env]
A = "1"
"#,
    );
    let opts = Options {
        namespace: Some("home".into()),
        ..Default::default()
    };
    let (_, objs) = export_with(vec![u], &opts);
    assert_eq!(objs.len(), 3, "ConfigMap, Service, Deployment");
    for o in &objs {
        assert_eq!(o["metadata"]["namespace"], "home", "{o}");
        assert_eq!(o["metadata"]["labels"][NAME_LABEL], "web");
        assert_eq!(o["metadata"]["labels"][MANAGED_BY_LABEL], "jarvis");
    }
    let (_, objs) = export_one(unit("web", WEB));
    assert!(objs
        .iter()
        .all(|o| o["metadata"].get("namespace").is_none()));
    assert_eq!(
        workload(&objs)["spec"]["selector"]["matchLabels"],
        json!({ NAME_LABEL: "web" })
    );
    assert_eq!(
        workload(&objs)["spec"]["template"]["metadata"]["annotations"]["kubernetes.io/description"],
        "the web"
    );
}

#[test]
fn names_are_dns_labels() {
    assert_eq!(dns_name("ollama"), "ollama");
    assert_eq!(dns_name("My_App.v2"), "my-app-v2");
    assert_eq!(dns_name("2fa"), "u-2fa");
    assert_eq!(dns_name("_x_"), "x");
    assert_eq!(dns_name(&"a".repeat(80)).len(), 63);
    let (doc, objs) = export_one(unit("2fa", WEB));
    assert_eq!(workload(&objs)["metadata"]["name"], "u-2fa");
    assert_eq!(doc.name, "2fa.yaml");
    assert!(doc.text.contains("its objects are named u-2fa"));
}

#[test]
fn published_ports_are_service_ports_and_host_ports() {
    let u = unit(
        "web",
        r#"
[container]
image = "nginx"
ports = ["8080:80", "127.0.0.1:5353:53/udp"]
"#,
    );
    let (_, objs) = export_one(u);
    let svc = kind(&objs, "Service");
    assert_eq!(svc["metadata"]["name"], "web");
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(svc["spec"]["selector"], json!({ NAME_LABEL: "web" }));
    let ports: Vec<(i64, i64, String)> = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["port"].as_i64().unwrap(),
                p["targetPort"].as_i64().unwrap(),
                p["protocol"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        vec![
            (8080, 80, "TCP".into()),
            (80, 80, "TCP".into()),
            (5353, 53, "UDP".into()),
            (53, 53, "UDP".into()),
        ]
    );
    assert_eq!(
        container(&objs)["ports"],
        json!([
            {"containerPort": 80, "hostPort": 8080, "protocol": "TCP"},
            {"containerPort": 53, "hostPort": 5353, "hostIP": "127.0.0.1", "protocol": "UDP"},
        ])
    );
}

#[test]
fn hostname_and_aliases_are_more_services() {
    let u = unit(
        "web",
        r#"
[container]
image = "nginx"
ports = ["8080:80"]
hostname = "www"
aliases = ["frontend"]
extra_hosts = ["nas:192.0.2.10", "host.docker.internal:host-gateway"]
"#,
    );
    let (doc, objs) = export_one(u);
    let names: Vec<&str> = objs
        .iter()
        .filter(|o| o["kind"] == "Service")
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web", "www", "frontend"]);
    assert_eq!(pod(&objs)["hostname"], "www");
    assert_eq!(
        pod(&objs)["hostAliases"],
        json!([{"ip": "192.0.2.10", "hostnames": ["nas"]}])
    );
    assert!(doc.text.contains("host-gateway has no Kubernetes form"));
}

#[test]
fn network_host_is_host_network_and_its_health_port_is_the_service() {
    let u = unit(
        "ha",
        r#"
[container]
image = "ha"
network = "host"
[health]
http = "http://127.0.0.1:8123/manifest.json"
"#,
    );
    let (_, objs) = export_one(u);
    assert_eq!(pod(&objs)["hostNetwork"], true);
    assert_eq!(pod(&objs)["dnsPolicy"], "ClusterFirstWithHostNet");
    assert_eq!(kind(&objs, "Service")["spec"]["ports"][0]["port"], 8123);
}

#[test]
fn a_unit_without_ports_has_no_service() {
    let (doc, objs) = export_one(unit("web", WEB));
    assert!(objs.iter().all(|o| o["kind"] != "Service"));
    assert!(container(&objs).get("ports").is_none());
    assert!(!doc.text.contains("kind: Service"));
}

#[test]
fn health_http_is_http_get_with_its_timing_and_a_startup_probe() {
    let u = unit(
        "web",
        r#"
[container]
image = "nginx"
[health]
http = "http://127.0.0.1:8080/healthz?full=1"
interval = "10s"
timeout = "1500ms"
retries = 4
start_period = "1m"
start_interval = "2s"
"#,
    );
    let (_, objs) = export_one(u);
    let c = container(&objs);
    let want = json!({
        "httpGet": {"path": "/healthz?full=1", "port": 8080},
        "periodSeconds": 10,
        "timeoutSeconds": 2,
        "failureThreshold": 4,
    });
    assert_eq!(c["livenessProbe"], want);
    assert_eq!(c["readinessProbe"], want);
    assert_eq!(
        c["startupProbe"],
        json!({
            "httpGet": {"path": "/healthz?full=1", "port": 8080},
            "periodSeconds": 2,
            "timeoutSeconds": 2,
            "failureThreshold": 30,
        })
    );
}

#[test]
fn health_tcp_and_exec_and_on_unhealthy_ignore() {
    let u = unit(
        "mq",
        r#"
[container]
image = "eclipse-mosquitto"
[health]
tcp = "127.0.0.1:1883"
"#,
    );
    let (_, objs) = export_one(u);
    assert_eq!(
        container(&objs)["livenessProbe"]["tcpSocket"],
        json!({"port": 1883})
    );
    assert!(container(&objs).get("startupProbe").is_none());
    let u = unit(
        "ts",
        r#"
[container]
image = "tailscale/tailscale"
[health]
exec = ["tailscale", "status"]
on_unhealthy = "ignore"
start_period = "15s"
"#,
    );
    let (doc, objs) = export_one(u);
    let c = container(&objs);
    assert_eq!(
        c["readinessProbe"]["exec"]["command"],
        json!(["tailscale", "status"])
    );
    assert!(c.get("livenessProbe").is_none());
    assert!(c.get("startupProbe").is_none());
    assert!(doc
        .text
        .contains("on_unhealthy = ignore: a readiness probe only"));
    let u = unit(
        "s",
        "[container]\nimage = \"x\"\n[health]\nhttp = \"http://db.lan:8080/ping\"\n",
    );
    let (_, objs) = export_one(u);
    assert_eq!(
        container(&objs)["livenessProbe"]["httpGet"],
        json!({"host": "db.lan", "path": "/ping", "port": 8080})
    );
}

#[test]
fn resources_are_limits_with_a_quarter_as_requests() {
    let u = unit(
        "web",
        r#"
[container]
image = "nginx"
[resources]
memory_max = "1G"
cpus = 1.5
cpu_weight = 50
pids_max = 64
cpuset = "0-1"
"#,
    );
    let (doc, objs) = export_one(u);
    assert_eq!(
        container(&objs)["resources"],
        json!({
            "limits": {"memory": "1Gi", "cpu": "1500m"},
            "requests": {"memory": "256Mi", "cpu": "375m"},
        })
    );
    for note in ["cpu_weight 50", "pids_max 64", "cpuset 0-1", "a quarter"] {
        assert!(doc.text.contains(note), "{note}");
    }
    assert_eq!(memory_quantity(1000), "1000");
    assert_eq!(cpu_quantity(2000), "2");
    assert_eq!(cpu_quantity(0), "1m");
}

#[test]
fn gpu_is_a_device_plugin_resource_and_min_vram_a_node_affinity() {
    let u = unit(
        "llm",
        r#"
[container]
image = "ollama/ollama"
[gpu]
want = "nvidia"
count = 2
min_vram = "6G"
"#,
    );
    let (_, objs) = export_one(u);
    assert_eq!(
        container(&objs)["resources"]["limits"]["nvidia.com/gpu"],
        "2"
    );
    assert_eq!(
        pod(&objs)["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"][0]["matchExpressions"],
        json!([{"key": "nvidia.com/gpu.memory", "operator": "Gt", "values": ["6143"]}])
    );
    let gpu = |want: &str| {
        let (doc, objs) = export_one(unit(
            "llm",
            &format!("[container]\nimage = \"x\"\n[gpu]\nwant = \"{want}\"\n"),
        ));
        (doc.text, container(&objs)["resources"].clone())
    };
    let (_, r) = gpu("amd");
    assert_eq!(r["limits"]["amd.com/gpu"], "1");
    let (text, r) = gpu("auto");
    assert_eq!(r["limits"]["nvidia.com/gpu"], "1");
    assert!(text.contains("want = auto"));
    let (_, r) = gpu("cpu");
    assert!(r.is_null(), "{r}");
}

#[test]
fn devices_are_generic_device_plugin_resources_on_their_node() {
    let u = unit(
        "z2m",
        r#"
[container]
image = "koenkk/zigbee2mqtt"
[[device]]
usb = "10c4:ea60"
as = "/dev/zigbee"
[[device]]
usb = "1cf1:0030"
as = "/dev/conbee"
optional = true
[[device]]
path = "/dev/net/tun"
"#,
    );
    let (doc, objs) = export_one(u);
    let limits = &container(&objs)["resources"]["limits"];
    assert_eq!(limits["squat.ai/usb-10c4-ea60"], "1");
    assert_eq!(limits["squat.ai/net-tun"], "1");
    assert!(limits.get("squat.ai/usb-1cf1-0030").is_none(), "optional");
    let affinity = &pod(&objs)["affinity"]["nodeAffinity"];
    assert_eq!(
        affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
            ["matchExpressions"],
        json!([{"key": "jarvis.dev/usb-10c4-ea60", "operator": "In", "values": ["true"]}])
    );
    assert_eq!(
        affinity["preferredDuringSchedulingIgnoredDuringExecution"][0]["preference"]
            ["matchExpressions"][0]["key"],
        "jarvis.dev/usb-1cf1-0030"
    );
    assert!(doc.text.contains("generic device plugin"));
    assert!(doc
        .text
        .contains("kubectl label node NODE jarvis.dev/usb-10c4-ea60=true"));
}

#[test]
fn security_maps_to_security_contexts() {
    let u = unit(
        "web",
        r#"
[container]
image = "nginx"
user = "1000:1001"
read_only = true
cap_drop = ["ALL"]
cap_add = ["CHOWN"]
group_add = ["44", "video"]
sysctls = { "net.ipv4.ip_unprivileged_port_start" = "80" }
[security]
capabilities = ["CAP_NET_BIND_SERVICE"]
"#,
    );
    let (doc, objs) = export_one(u);
    assert_eq!(
        container(&objs)["securityContext"],
        json!({
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "runAsUser": 1000,
            "runAsGroup": 1001,
            "capabilities": {"add": ["CHOWN", "NET_BIND_SERVICE"], "drop": ["ALL"]},
        })
    );
    assert_eq!(
        pod(&objs)["securityContext"],
        json!({
            "supplementalGroups": [44],
            "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "80"}],
        })
    );
    assert!(doc.text.contains("group_add video: names"));

    let u = unit(
        "p",
        "[container]\nimage = \"x\"\nprivileged = true\nuser = \"app\"\n[security]\nno_new_privileges = true\n",
    );
    let (doc, objs) = export_one(u);
    assert_eq!(
        container(&objs)["securityContext"],
        json!({"privileged": true}),
        "privileged leaves allowPrivilegeEscalation out (Kubernetes refuses false with it)"
    );
    assert!(doc.text.contains("user app: a name"));
    let u = unit(
        "n",
        "[container]\nimage = \"x\"\n[security]\nno_new_privileges = false\n",
    );
    let (_, objs) = export_one(u);
    assert!(container(&objs).get("securityContext").is_none());
}

#[test]
fn env_is_a_config_map_and_secret_keys_are_secret_references() {
    let u = unit(
        "web",
        r#"
env_file = ["/etc/web/web.env", "/etc/web/keys.env.age"]
[container]
image = "nginx"
[env]
GREETING = "hello"
API_TOKEN = "s3cr3t-value"
DB_PASSWORD = "hunter2"
"#,
    );
    let (doc, objs) = export_one(u);
    assert!(!doc.text.contains("s3cr3t-value") && !doc.text.contains("hunter2"));
    let map = kind(&objs, "ConfigMap");
    assert_eq!(map["metadata"]["name"], "web-env");
    assert_eq!(map["data"], json!({"GREETING": "hello"}));
    let c = container(&objs);
    assert_eq!(
        c["envFrom"],
        json!([
            {"configMapRef": {"name": "web-env-file-1"}},
            {"secretRef": {"name": "web-env-file-2"}},
            {"configMapRef": {"name": "web-env"}},
        ])
    );
    assert_eq!(
        c["env"],
        json!([
            {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "web-env-secret", "key": "API_TOKEN"}}},
            {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "web-env-secret", "key": "DB_PASSWORD"}}},
        ])
    );
    assert!(doc
        .text
        .contains("kubectl create configmap web-env-file-1 --from-env-file=/etc/web/web.env"));
    assert!(doc.text.contains("age -d"));
    assert!(doc
        .text
        .contains("kubectl create secret generic web-env-secret"));
}

#[test]
fn secret_files_are_a_secret_volume() {
    let u = unit(
        "web",
        r#"
[container]
image = "nginx"
[[secret]]
source = "/etc/web/db.pass"
target = "db_password"
mode = "0440"
"#,
    );
    let (doc, objs) = export_one(u);
    assert_eq!(
        pod(&objs)["volumes"],
        json!([{"name": "secrets", "secret": {"secretName": "web-files", "items": [
            {"key": "db_password", "path": "db_password", "mode": 0o440}
        ]}}])
    );
    assert_eq!(
        container(&objs)["volumeMounts"],
        json!([{"name": "secrets", "mountPath": "/run/secrets", "readOnly": true}])
    );
    assert!(doc
        .text
        .contains("--from-file=db_password=/etc/web/db.pass"));
}

#[test]
fn volumes_are_host_paths_empty_dirs_or_claims() {
    let toml = r#"
[container]
image = "postgres"
volumes = ["/srv/conf:/etc/pg:ro", "pgdata:/var/lib/postgresql/data"]
tmpfs = ["/tmp:size=64m,mode=1777"]
shm_size = "256m"
"#;
    let (_, objs) = export_one(unit("db", toml));
    assert_eq!(workload(&objs)["kind"], "Deployment");
    assert_eq!(
        pod(&objs)["volumes"],
        json!([
            {"name": "host", "hostPath": {"path": "/srv/conf"}},
            {"name": "pgdata", "hostPath": {"path": "/var/lib/jarvis/volumes/pgdata", "type": "DirectoryOrCreate"}},
            {"name": "tmpfs", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}},
        ])
    );
    assert_eq!(
        container(&objs)["volumeMounts"],
        json!([
            {"name": "host", "mountPath": "/etc/pg", "readOnly": true},
            {"name": "pgdata", "mountPath": "/var/lib/postgresql/data"},
            {"name": "tmpfs", "mountPath": "/tmp"},
            {"name": "dshm", "mountPath": "/dev/shm"},
        ])
    );
    let opts = Options {
        storage: Storage::Pvc,
        ..Default::default()
    };
    let (doc, objs) = export_with(vec![unit("db", toml)], &opts);
    let set = workload(&objs);
    assert_eq!(set["kind"], "StatefulSet");
    assert_eq!(set["spec"]["serviceName"], "db");
    assert_eq!(
        set["spec"]["volumeClaimTemplates"][0]["metadata"]["name"],
        "pgdata"
    );
    assert_eq!(
        set["spec"]["volumeClaimTemplates"][0]["spec"],
        json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}})
    );
    assert!(pod(&objs)["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["name"] != "pgdata"));
    assert!(doc.text.contains("volumeClaimTemplate"));
    // Without named volumes --storage pvc keeps a Deployment.
    let (_, objs) = export_with(vec![unit("web", WEB)], &opts);
    assert_eq!(workload(&objs)["kind"], "Deployment");
}

#[test]
fn restart_maps_to_deployment_or_job() {
    let (doc, objs) = export_one(unit("web", WEB));
    let d = workload(&objs);
    assert_eq!(d["kind"], "Deployment");
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(d["spec"]["strategy"]["type"], "Recreate");
    assert!(doc.text.contains("restart = on-failure"));
    let once = unit(
        "once",
        "[container]\nimage = \"x\"\n[restart]\npolicy = \"never\"\n",
    );
    let (_, objs) = export_one(once);
    let j = workload(&objs);
    assert_eq!(j["kind"], "Job");
    assert_eq!(j["spec"]["backoffLimit"], 0);
    assert_eq!(j["spec"]["template"]["spec"]["restartPolicy"], "Never");
    // A unit another waits on to complete is a Job too.
    let migrate = unit("migrate", "[container]\nimage = \"x\"\n");
    let web = unit(
        "web",
        "depends_on = { migrate = \"completed\" }\n[container]\nimage = \"x\"\n",
    );
    let (_, objs) = export_with(vec![migrate, web], &Options::default());
    let j = workload(&objs);
    assert_eq!(j["kind"], "Job");
    assert_eq!(j["spec"]["backoffLimit"], 5);
    assert_eq!(j["spec"]["template"]["spec"]["restartPolicy"], "OnFailure");
}

#[test]
fn depends_on_waits_for_the_dependency_service() {
    let db = unit(
        "db",
        r#"
[container]
image = "postgres"
ports = ["5432:5432"]
"#,
    );
    let api = unit(
        "api",
        r#"
[container]
image = "api"
[health]
http = "http://127.0.0.1:9000/ready"
"#,
    );
    let native = unit("mq", "[native]\ncommand = [\"/usr/sbin/mosquitto\"]\n");
    let job = unit("migrate", "[container]\nimage = \"m\"\n");
    let web = unit(
        "web",
        r#"
depends_on = { db = "started", api = "healthy", mq = "healthy", migrate = "completed" }
[container]
image = "web"
"#,
    );
    let (doc, objs) = export_with(vec![web, db, api, native, job], &Options::default());
    let inits = pod(&objs)["initContainers"].as_array().unwrap();
    let scripts: Vec<(&str, &str)> = inits
        .iter()
        .map(|c| {
            assert_eq!(c["image"], WAIT_IMAGE);
            (
                c["name"].as_str().unwrap(),
                c["command"][2].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        scripts,
        vec![
            (
                "wait-for-db",
                "until nc -z -w 2 db 5432; do echo waiting for db; sleep 2; done"
            ),
            (
                "wait-for-api",
                "until wget -q -T 2 -O /dev/null http://api:9000/ready; do echo waiting for \
                 api; sleep 2; done"
            ),
        ]
    );
    assert!(doc
        .text
        .contains("depends_on mq (healthy): mq is not exported"));
    assert!(doc
        .text
        .contains("kubectl wait --for=condition=complete job/migrate"));
}

#[test]
fn command_entrypoint_working_dir_and_stop() {
    let u = unit(
        "web",
        r#"
[container]
image = "nginx"
entrypoint = ["/docker-entrypoint.sh"]
command = ["nginx", "-g", "daemon off;"]
working_dir = "/srv"
init = true
[stop]
signal = "SIGQUIT"
timeout = "20s"
"#,
    );
    let (doc, objs) = export_one(u);
    let c = container(&objs);
    assert_eq!(c["command"], json!(["/docker-entrypoint.sh"]));
    assert_eq!(c["args"], json!(["nginx", "-g", "daemon off;"]));
    assert_eq!(c["workingDir"], "/srv");
    assert_eq!(pod(&objs)["terminationGracePeriodSeconds"], 20);
    assert_eq!(pod(&objs)["shareProcessNamespace"], true);
    assert!(doc.text.contains("[stop] signal 3"));
}

#[test]
fn the_repository_units_export() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../units");
    let set = jarvis_unit::load_dir(&dir).expect("units/ loads");
    let units: Vec<Unit> = set.units.into_values().collect();
    let out = export(&units, &Options::default());
    let done: Vec<&str> = out
        .documents
        .iter()
        .filter_map(|d| d.unit.as_deref())
        .collect();
    assert_eq!(
        done,
        [
            "home-assistant",
            "jellyfin",
            "mosquitto",
            "ollama",
            "open-webui",
            "tailscale",
            "zigbee2mqtt"
        ]
    );
    assert!(out.skipped.is_empty(), "{:?}", out.skipped);
    for d in &out.documents {
        assert!(objects(d).iter().all(|o| o["apiVersion"].is_string()));
    }
}
