//! `--metrics-file`: a real mount keeps Prometheus text in the file for node_exporter's
//! textfile collector, and says it is down once unmounted.

use crate::common;

use common::mount::*;
use common::wait_for;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// A parsed sample: the metric name with its labels as written, and the value.
type Samples = BTreeMap<String, f64>;

/// Parses the text exposition format strictly enough to catch a broken line: every line
/// is a `# HELP`/`# TYPE` comment or `name{labels} value` with a number for the value,
/// each family's `# TYPE` comes before its samples, and no family is declared twice.
pub fn parse(text: &str) -> Samples {
    assert!(text.ends_with('\n'), "{text}");
    let mut samples = Samples::new();
    let mut declared: Vec<String> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap().to_string();
            assert!(!declared.contains(&name), "{name} declared twice");
            declared.push(name);
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample: {line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !name.is_empty(),
            "{line:?}"
        );
        let family = declared
            .last()
            .unwrap_or_else(|| panic!("no TYPE before {line:?}"));
        assert!(
            name.starts_with(family.as_str()),
            "{line:?} outside its family {family}"
        );
        if series.contains('{') {
            assert!(series.ends_with('}'), "{line:?}");
        }
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        assert!(
            samples.insert(series.to_string(), value).is_none(),
            "duplicate {line:?}"
        );
    }
    samples
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Mounts with `--metrics-file` and returns the guard; the file exists once it serves.
pub fn mount_with_metrics(gw: &TestGateway, path: &Path) -> Mounted {
    Mounted::start(gw, &["--metrics-file", path.to_str().unwrap()])
}

#[test]
fn a_mount_keeps_its_metrics_in_the_file_and_says_when_it_is_down() {
    let gw = TestGateway::start(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s3credsfs.prom");
    let mut mount = mount_with_metrics(&gw, &path);
    // Written before the mount served; parsed as Prometheus would.
    let samples = parse(&read(&path));
    let mountpoint = mount.path.display().to_string();
    assert_eq!(
        samples[&format!("s3credsfs_up{{mountpoint=\"{mountpoint}\"}}")],
        1.0
    );
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        samples[&format!("s3credsfs_build_info{{version=\"{version}\",build=\"dev-gateway\"}}")],
        1.0
    );
    let left = samples["s3credsfs_credentials_expiry_seconds{profile=\"default\"}"];
    assert!((3000.0..=3600.0).contains(&left), "{left}");
    let fetched = samples["s3credsfs_last_refresh_timestamp_seconds{profile=\"default\"}"];
    let now = chrono::Utc::now().timestamp() as f64;
    assert!((now - 60.0..=now).contains(&fetched), "{fetched} vs {now}");
    assert_eq!(
        samples["s3credsfs_refreshes_total{profile=\"default\",cause=\"read\"}"],
        1.0
    );
    assert_eq!(
        samples["s3credsfs_refresh_failures_total{profile=\"default\",cause=\"unreachable\"}"],
        0.0
    );
    // The login and the STS call, both timed.
    assert_eq!(
        samples["s3credsfs_gateway_request_duration_seconds_count{profile=\"default\"}"],
        2.0
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o644, "node_exporter, another user, reads it");

    // A forced refresh is a change: the file shows it without waiting for the interval.
    let out = bin().args(["refresh"]).arg(&mount.path).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(
        "the forced refresh in the metrics file",
        Duration::from_secs(10),
        || {
            read(&path)
                .contains("s3credsfs_refreshes_total{profile=\"default\",cause=\"forced\"} 1\n")
        },
    );

    mount.signal(libc::SIGTERM);
    assert!(mount.wait_exit().success(), "{}", mount.log());
    let samples = parse(&read(&path));
    assert_eq!(
        samples[&format!("s3credsfs_up{{mountpoint=\"{mountpoint}\"}}")],
        0.0
    );
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "no temporary file is left behind");
}

/// `promtool check metrics`, as CI runs it on what node_exporter would read: no lint
/// problem in the file a real mount wrote.
#[cfg(feature = "s3-tests")]
#[test]
fn promtool_accepts_the_file() {
    common::clients::require_tool("promtool");
    let gw = TestGateway::start(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s3credsfs.prom");
    let _mount = mount_with_metrics(&gw, &path);
    let text = read(&path);
    let out = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&path).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
