//! The SIEM stream to syslog (issue 22 item 2): a real `vigil serve` sends
//! each ledger entry as an RFC 5424 message, octet-counted, over TLS to a
//! real rsyslog (Debian's `rsyslog` with its OpenSSL driver, installed by
//! scripts/deps.sh, started by this test with a certificate made here). The
//! collector's file holds every entry in order with the right priority and
//! message ID; after a restart the node carries on from its cursor without
//! sending anything twice; a collector whose certificate the node does not
//! trust gets nothing.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod verify_support;
use verify_support::{ledger_size, ok, vigil, Served};

struct Rsyslog(Child);

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// rsyslog on `port` with TLS (the OpenSSL driver: TLS 1.3; anonymous clients), writing
/// `PRI APP MSGID MSG` lines to `out`.
fn rsyslog(dir: &Path, port: u16, cert: &Path, key: &Path, ca: &Path, out: &Path) -> Rsyslog {
    let conf = dir.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            r#"global(workDirectory="{d}" maxMessageSize="64k" DefaultNetstreamDriver="ossl"
       DefaultNetstreamDriverCAFile="{ca}" DefaultNetstreamDriverCertFile="{cert}" DefaultNetstreamDriverKeyFile="{key}")
module(load="imtcp" StreamDriver.Name="ossl" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
template(name="line" type="string" string="%pri% %app-name% %msgid% %msg%\n")
ruleset(name="vigil") {{ action(type="omfile" file="{out}" template="line") }}
input(type="imtcp" port="{port}" ruleset="vigil")
"#,
            d = dir.display(),
            ca = ca.display(),
            cert = cert.display(),
            key = key.display(),
            out = out.display(),
        ),
    )
    .expect("rsyslog.conf");
    let rsyslogd = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
        .iter()
        .find(|p| Path::new(p).exists())
        .expect("rsyslogd is not installed: run scripts/deps.sh (it installs Debian's rsyslog and rsyslog-openssl)");
    let child = Command::new(rsyslogd)
        .arg("-n")
        .arg("-f")
        .arg(&conf)
        .arg("-i")
        .arg(dir.join("rsyslog.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rsyslogd");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "rsyslogd did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Rsyslog(child)
}

/// The collector's whole lines as (pri, app, msgid, json); a line the
/// collector is still writing is left for the next look.
fn received(out: &Path) -> Vec<(String, String, String, serde_json::Value)> {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let whole = text.rfind('\n').map_or("", |end| &text[..=end]);
    whole
        .lines()
        .map(|l| {
            let mut parts = l.splitn(4, ' ');
            let (pri, app, msgid, msg) = (
                parts.next().unwrap_or_default().to_string(),
                parts.next().unwrap_or_default().to_string(),
                parts.next().unwrap_or_default().to_string(),
                parts.next().unwrap_or_default(),
            );
            let json = serde_json::from_str(msg.trim()).unwrap_or_else(|e| panic!("{l}: {e}"));
            (pri, app, msgid, json)
        })
        .collect()
}

fn wait_for(out: &Path, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while (received(out).len() as u64) < n {
        assert!(
            Instant::now() < deadline,
            "the collector got {} of {n} messages",
            received(out).len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A new home sending to the collector on `port` over TLS, trusting `ca`.
fn syslog_home(home: &Path, port: u16, ca: &Path) -> std::path::PathBuf {
    ok(vigil(home).arg("init").output().expect("init"));
    let config = home.join("vigil.toml");
    let text = std::fs::read_to_string(&config).expect("config").replace(
        "[siem]\n",
        &format!(
            "[siem]\nsyslog = \"127.0.0.1:{port}\"\nsyslog_tls = true\nsyslog_ca_file = \"{}\"\nsyslog_server_name = \"localhost\"\n",
            ca.display()
        ),
    );
    std::fs::write(&config, text).expect("config");
    home.to_path_buf()
}

fn import(home: &Path, dir: &Path, n: usize, tag: &str) {
    let lines: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"actor":"ci:{tag}","subject":"job:{i}","decision":"deny"}}"#))
        .collect();
    verify_support::import_lines(home, dir, tag, &lines);
}

#[test]
fn entries_reach_a_real_rsyslog_over_tls_once_each_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // A CA and the collector's certificate for `localhost`.
    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let server_key = rcgen::KeyPair::generate().expect("server key");
    let server = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .expect("params")
        .signed_by(&server_key, &issuer)
        .expect("server cert");
    std::fs::write(d.join("ca.pem"), ca_cert.pem()).expect("ca.pem");
    std::fs::write(d.join("server.pem"), server.pem()).expect("server.pem");
    std::fs::write(d.join("server.key"), server_key.serialize_pem()).expect("server.key");
    let port = free_port();
    let out = d.join("received.log");
    let _collector = rsyslog(
        d,
        port,
        &d.join("server.pem"),
        &d.join("server.key"),
        &d.join("ca.pem"),
        &out,
    );

    let home = syslog_home(&d.join("home"), port, &d.join("ca.pem"));

    let node = Served::start(&home);
    import(&home, d, 40, "a");
    let size = ledger_size(&home);
    wait_for(&out, size);
    node.stop();
    // The node's last checkpoint adds no entry; restart and record more.
    let node = Served::start(&home);
    import(&home, d, 10, "b");
    let size = ledger_size(&home);
    wait_for(&out, size);
    node.stop();

    let got = received(&out);
    let indices: Vec<u64> = got
        .iter()
        .map(|(_, _, _, j)| j["vigil"]["index"].as_u64().expect("index"))
        .collect();
    assert_eq!(
        indices,
        (0..size).collect::<Vec<_>>(),
        "every entry once, in order"
    );
    for (pri, app, msgid, json) in &got {
        assert_eq!(app, "vigil");
        assert_eq!(msgid, json["vigil"]["kind"].as_str().expect("kind"));
        let expected = match json["vigil"]["decision"].as_str() {
            Some("deny") => "108",
            Some("allow") => "110",
            _ => "109",
        };
        assert_eq!(pri, expected, "facility log audit, severity by decision");
    }
    assert!(
        got.iter().any(|(pri, ..)| pri == "108"),
        "the refusals are warnings"
    );

    // A collector with a certificate the node does not trust gets nothing.
    let other_key = rcgen::KeyPair::generate().expect("key");
    let other = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .expect("params")
        .self_signed(&other_key)
        .expect("cert");
    let d2 = d.join("untrusted");
    std::fs::create_dir_all(&d2).expect("dir");
    std::fs::write(d2.join("cert.pem"), other.pem()).expect("pem");
    std::fs::write(d2.join("key.pem"), other_key.serialize_pem()).expect("pem");
    let port2 = free_port();
    let out2 = d2.join("received.log");
    let _untrusted = rsyslog(
        &d2,
        port2,
        &d2.join("cert.pem"),
        &d2.join("key.pem"),
        &d2.join("cert.pem"),
        &out2,
    );
    let home2 = syslog_home(&d.join("home2"), port2, &d.join("ca.pem"));
    let node = Served::start(&home2);
    import(&home2, d, 5, "c");
    std::thread::sleep(Duration::from_secs(2));
    node.stop();
    assert!(
        received(&out2).is_empty(),
        "nothing sent to an untrusted collector"
    );
    let cursor = std::fs::read_to_string(home2.join("siem/syslog.cursor")).unwrap_or_default();
    assert!(
        cursor.trim().is_empty() || cursor.trim() == "0",
        "the cursor did not move: {cursor}"
    );
}
