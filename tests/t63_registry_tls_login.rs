//! Registries end to end, through the `swarm` CLI and a real daemon against Debian's
//! `docker-registry` on loopback: `swarm login`/`logout` and the credential file, a registry
//! that speaks only TLS (a CA made with openssl at test time, trusted through the daemon's
//! certs.d), a redirect to HTTPS blob storage, and a pull cut by a daemon crash in the middle
//! of a layer that the next pull resumes.
//!
//! A small HTTP proxy (`Proxy`) sits between the daemon and a registry where a test needs to
//! see or steer the traffic: it logs every request, can hold a blob's answer after N bytes,
//! and can redirect blob GETs elsewhere.
//!
//! Needs the packages `docker-registry`, `apache2-utils` (htpasswd -B) and `openssl`.

mod common;
mod image_support;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use common::daemon::Daemon;
use common::registry::Registry;
use common::{SWARM, run_logged};
use image_support::*;
use swarm::image::registry::{PushOptions, RegistryClient};
use swarm::image::{Digest, ImageStore};

// --- certificates ------------------------------------------------------------------------

/// A test CA and a server certificate it signed, for `IP:127.0.0.1` and `DNS:localhost`,
/// plus a second CA that signed nothing here.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = scratch("pki");
        let openssl = |args: &[&str]| {
            let out = run_logged(
                Command::new("openssl").current_dir(dir.path()).args(args),
                &format!("openssl {}", args.join(" ")),
            );
            assert!(
                out.status.success(),
                "openssl {args:?} (apt-get install openssl)"
            );
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        for (name, subject) in [("ca", "/CN=swarm test CA"), ("other-ca", "/CN=another CA")] {
            let (key, crt) = (format!("{name}.key"), format!("{name}.crt"));
            let mut args = vec!["req", "-x509", "-new", "-nodes", "-days", "2"];
            args.extend(ec);
            args.extend(["-keyout", &key, "-out", &crt, "-subj", subject]);
            openssl(&args);
        }
        let mut args = vec!["req", "-new", "-nodes"];
        args.extend(ec);
        args.extend([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=swarm test registry",
        ]);
        openssl(&args);
        std::fs::write(
            dir.path().join("server.ext"),
            "subjectAltName = IP:127.0.0.1, DNS:localhost\nbasicConstraints = CA:FALSE\n\
             keyUsage = digitalSignature\nextendedKeyUsage = serverAuth\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ]);
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Put `ca` (a file of this PKI) as the only CA of `registry` in `certs_dir`.
    fn trust(&self, certs_dir: &Path, registry: &str, ca: &str) {
        let dir = certs_dir.join(registry);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(self.path(ca), dir.join("ca.crt")).unwrap();
    }
}

// --- the CLI -------------------------------------------------------------------------------

/// The `swarm` CLI against one daemon, with its own credential file ($SWARM_CONFIG).
struct Cli {
    host: String,
    config_dir: PathBuf,
}

impl Cli {
    fn new(daemon: &Daemon) -> Cli {
        Cli {
            host: daemon.host(),
            config_dir: daemon.dir.path().join("client-config"),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(SWARM);
        command
            .arg("-H")
            .arg(&self.host)
            .args(args)
            .env("SWARM_CONFIG", &self.config_dir);
        command
    }

    /// Run with `stdin` as standard input; logged.
    fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        eprintln!(
            "$ swarm {} -> {:?}\n{}{}",
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut command = self.command(args);
        command.stdin(Stdio::null());
        run_logged(&mut command, &format!("swarm {}", args.join(" ")))
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "swarm {args:?} failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run, expect failure, return stdout + stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "swarm {args:?} succeeded");
        text(&out)
    }

    fn credential_file(&self) -> PathBuf {
        self.config_dir.join("config.json")
    }

    /// The credential file's `auths`, `{}` when there is no file.
    fn auths(&self) -> serde_json::Value {
        match std::fs::read(self.credential_file()) {
            Ok(bytes) => {
                serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()["auths"].clone()
            }
            Err(_) => serde_json::json!({}),
        }
    }

    fn inspect(&self, image: &str) -> serde_json::Value {
        let out: serde_json::Value =
            serde_json::from_str(&self.ok(&["image", "inspect", image])).unwrap();
        out[0].clone()
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// No file under `dir` contains `needle` (the daemon keeps no password).
fn assert_nowhere_in(dir: &Path, needle: &str) {
    let mut stack = vec![dir.to_path_buf()];
    let mut visited = 0;
    while let Some(path) = stack.pop() {
        visited += 1;
        assert!(visited < 100_000, "too many files under {}", dir.display());
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).into_iter().flatten().flatten() {
                stack.push(entry.path());
            }
        } else if meta.is_file()
            && let Ok(bytes) = std::fs::read(&path)
        {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{} holds the password",
                path.display()
            );
        }
    }
}

// --- the proxy -----------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Logged {
    method: String,
    path: String,
    range: Option<String>,
}

struct ProxyState {
    /// `http://host:port` or `https://host:port`.
    upstream: String,
    http: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    log: Mutex<Vec<Logged>>,
    /// Answer the next GET of this blob with its first N bytes, then nothing (the connection
    /// stays open until the client goes away).
    stall: Mutex<Option<(Digest, usize)>>,
    /// Redirect blob GETs to this origin (`https://127.0.0.1:PORT`).
    redirect_blobs_to: Mutex<Option<String>>,
}

/// An HTTP proxy on its own loopback port and its own tokio runtime, in front of a registry.
struct Proxy {
    addr: SocketAddr,
    state: Arc<ProxyState>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Proxy {
    /// A proxy to `upstream`; `ca_dir` holds CAs to trust when the upstream speaks TLS.
    fn start(upstream: &str, ca_dir: Option<&Path>) -> Proxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let tls = swarm::image::registry::tls::client_config("proxy", ca_dir).unwrap();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let state = Arc::new(ProxyState {
            upstream: upstream.to_string(),
            http: Client::builder(TokioExecutor::new()).build(connector),
            log: Mutex::new(Vec::new()),
            stall: Mutex::new(None),
            redirect_blobs_to: Mutex::new(None),
        });
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(state.clone());
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Proxy {
            addr,
            state,
            runtime: Some(runtime),
        }
    }

    fn host(&self) -> String {
        self.addr.to_string()
    }

    fn stall(&self, digest: &Digest, after: usize) {
        *self.state.stall.lock().unwrap() = Some((digest.clone(), after));
    }

    fn redirect_blobs_to(&self, origin: &str) {
        *self.state.redirect_blobs_to.lock().unwrap() = Some(origin.to_string());
    }

    fn requests(&self) -> Vec<Logged> {
        self.state.log.lock().unwrap().clone()
    }

    /// GETs of a blob's content.
    fn blob_fetches(&self, digest: &Digest) -> Vec<Logged> {
        let suffix = format!("/blobs/{digest}");
        self.requests()
            .into_iter()
            .filter(|r| r.method == "GET" && r.path.ends_with(&suffix))
            .collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn blob_digest_of(path: &str) -> Option<Digest> {
    path.rsplit_once("/blobs/")?.1.parse().ok()
}

async fn forward(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let range = parts
        .headers
        .get("range")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    state.log.lock().unwrap().push(Logged {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        range,
    });
    let blob = (parts.method == hyper::Method::GET)
        .then(|| blob_digest_of(parts.uri.path()))
        .flatten();
    let redirect = state.redirect_blobs_to.lock().unwrap().clone();
    if let (Some(_), Some(origin)) = (&blob, redirect) {
        return Response::builder()
            .status(307)
            .header("location", format!("{origin}{path_and_query}"))
            .body(Body::empty())
            .unwrap();
    }
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let mut upstream = hyper::Request::builder()
        .method(parts.method.clone())
        .uri(format!("{}{path_and_query}", state.upstream));
    for (name, value) in &parts.headers {
        if name != "host" {
            upstream = upstream.header(name, value);
        }
    }
    let answer = match state
        .http
        .request(upstream.body(Full::new(body)).unwrap())
        .await
    {
        Ok(answer) => answer,
        Err(e) => {
            return Response::builder()
                .status(502)
                .body(Body::from(format!("proxy: {e}")))
                .unwrap();
        }
    };
    let (answer_parts, answer_body) = answer.into_parts();
    let bytes = answer_body.collect().await.unwrap().to_bytes();
    let mut response = Response::builder().status(answer_parts.status);
    for (name, value) in &answer_parts.headers {
        response = response.header(name, value);
    }
    let stall = {
        let mut stall = state.stall.lock().unwrap();
        match (&*stall, &blob) {
            (Some((d, after)), Some(asked)) if d == asked => {
                let after = *after;
                *stall = None;
                Some(after)
            }
            _ => None,
        }
    };
    if let Some(after) = stall {
        let head = bytes.slice(..after.min(bytes.len()));
        let never = async {
            std::future::pending::<()>().await;
            Err(std::io::Error::other("unreachable"))
        };
        let chunks = futures::stream::iter([Ok(head)]).chain(futures::stream::once(never));
        return response.body(Body::from_stream(chunks)).unwrap();
    }
    response.body(Body::from(bytes)).unwrap()
}

// --- t10: login ----------------------------------------------------------------------------

#[test]
fn t10_login_checks_stores_and_sends_credentials_then_logout_forgets_them() {
    let registry = Registry::start(&[("alice", "s3cret-pass")]);
    let d = Daemon::start("login");
    let cli = Cli::new(&d);
    let server = registry.host();
    let name = format!("{server}/login/busybox:1");
    d.import_busybox();
    cli.ok(&["image", "tag", "busybox:test", &name]);

    eprintln!("--- without a login the registry refuses the push");
    let out = cli.fails(&["image", "push", &name]);
    assert!(out.contains("authentication required"), "{out}");

    eprintln!("--- a wrong password is refused by the registry, and nothing is stored");
    let out = cli.fails(&["login", &server, "-u", "alice", "-p", "wrong-pass"]);
    assert!(out.contains("incorrect username or password"), "{out}");
    assert!(
        !out.contains("wrong-pass"),
        "the password is never shown: {out}"
    );
    assert!(!cli.credential_file().exists());
    let out = cli.run_with_stdin(&["login", &server, "--password-stdin"], "s3cret-pass\n");
    assert!(!out.status.success());
    assert!(text(&out).contains("--password-stdin needs --username"));

    eprintln!("--- the right one is stored, docker's shape, mode 0600");
    let out = cli.run_with_stdin(
        &["login", &server, "-u", "alice", "--password-stdin"],
        "s3cret-pass\n",
    );
    assert!(out.status.success());
    assert!(text(&out).contains("Login Succeeded"), "{}", text(&out));
    assert!(!text(&out).contains("s3cret-pass"));
    let mode = std::fs::metadata(cli.credential_file())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "credential file mode {mode:o}");
    // base64("alice:s3cret-pass")
    assert_eq!(
        cli.auths(),
        serde_json::json!({ server.clone(): { "auth": "YWxpY2U6czNjcmV0LXBhc3M=" } })
    );

    eprintln!("--- push and pull send the stored credentials");
    let out = cli.ok(&["image", "push", &name]);
    assert!(out.contains("digest: sha256:"), "{out}");
    let pushed_id = cli.inspect(&name)["Id"].clone();
    cli.ok(&["image", "rm", &name]);
    cli.ok(&["image", "rm", "busybox:test"]);
    let out = cli.ok(&["image", "pull", &name]);
    assert!(out.contains("Downloaded image"), "{out}");
    assert_eq!(cli.inspect(&name)["Id"], pushed_id);
    assert_nowhere_in(d.dir.path().join("data").as_path(), "s3cret-pass");

    eprintln!("--- login again reuses the stored credentials");
    let out = cli.ok(&["login", &server]);
    assert!(out.contains("Login Succeeded"), "{out}");

    eprintln!("--- logout forgets them; pulls are refused again");
    let out = cli.ok(&["logout", &server]);
    assert_eq!(out, format!("Removing login credentials for {server}\n"));
    assert_eq!(cli.auths(), serde_json::json!({}));
    cli.ok(&["image", "rm", &name]);
    let out = cli.fails(&["image", "pull", &name]);
    assert!(out.contains("authentication required"), "{out}");
    let out = cli.ok(&["logout", &server]);
    assert_eq!(out, format!("Not logged in to {server}\n"));

    eprintln!("--- the docker CLI's login goes through the same check");
    let out = d.docker(&["login", &server, "-u", "alice", "-p", "wrong-pass"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("incorrect username or password"),
        "{}",
        text(&out)
    );
    let out = d.docker(&["login", &server, "-u", "alice", "-p", "s3cret-pass"]);
    assert!(text(&out).contains("Login Succeeded"), "{}", text(&out));
}

// --- t20: TLS -------------------------------------------------------------------------------

#[test]
fn t20_tls_registry_trusted_through_certs_d() {
    let pki = Pki::new();
    let registry = Registry::start_tls(
        &[("tls-user", "tls-pass")],
        &pki.path("server.crt"),
        &pki.path("server.key"),
    );
    let certs = scratch("certs-d");
    let d = Daemon::start_with(
        "tls",
        &["--registry-certs-dir", certs.path().to_str().unwrap()],
    );
    let cli = Cli::new(&d);
    let server = registry.host();
    let name = format!("{server}/tls/busybox:1");
    d.import_busybox();
    cli.ok(&["image", "tag", "busybox:test", &name]);
    let login = |server: &str| {
        cli.run_with_stdin(
            &["login", server, "-u", "tls-user", "--password-stdin"],
            "tls-pass",
        )
    };

    eprintln!("--- certs.d names another CA: the certificate is refused, clearly");
    pki.trust(certs.path(), &server, "other-ca.crt");
    let out = login(&server);
    assert!(!out.status.success());
    let message = text(&out);
    assert!(message.contains("certificate verify failed"), "{message}");
    assert!(message.contains("UnknownIssuer"), "{message}");
    let ca_path = certs.path().join(&server).join("ca.crt");
    assert!(message.contains(&*ca_path.to_string_lossy()), "{message}");
    assert_eq!(cli.auths(), serde_json::json!({}), "nothing stored");
    let out = cli.fails(&["image", "push", &name]);
    assert!(out.contains("certificate verify failed"), "{out}");

    eprintln!("--- an empty certs.d directory still means TLS, and no trust");
    std::fs::remove_file(&ca_path).unwrap();
    let out = cli.fails(&["image", "pull", &name]);
    assert!(out.contains("certificate verify failed"), "{out}");

    eprintln!("--- with the CA: login, push, pull over HTTPS");
    pki.trust(certs.path(), &server, "ca.crt");
    let out = login(&server);
    assert!(text(&out).contains("Login Succeeded"), "{}", text(&out));
    let out = cli.ok(&["image", "push", &name]);
    assert!(out.contains("digest: sha256:"), "{out}");
    let pushed = cli.inspect(&name);
    cli.ok(&["image", "rm", &name]);
    cli.ok(&["image", "rm", "busybox:test"]);
    cli.ok(&["image", "pull", &name]);
    assert_eq!(cli.inspect(&name)["Id"], pushed["Id"]);
    assert_eq!(
        cli.inspect(&name)["ManifestDigest"],
        pushed["ManifestDigest"]
    );

    eprintln!("--- the registry speaks only TLS: plain HTTP (--insecure) gets nowhere");
    let out = cli.fails(&["image", "pull", "--insecure", &name]);
    assert!(!out.contains("Downloaded image"), "{out}");

    eprintln!("--- by the name localhost, its certs.d directory, the DNS name in the certificate");
    let port = registry.addr.port();
    let by_name = format!("localhost:{port}");
    pki.trust(certs.path(), &by_name, "ca.crt");
    let out = login(&by_name);
    assert!(out.status.success(), "{}", text(&out));
    cli.ok(&["image", "pull", &format!("{by_name}/tls/busybox:1")]);
    assert_eq!(
        cli.inspect(&format!("{by_name}/tls/busybox:1"))["Id"],
        pushed["Id"]
    );
    assert_eq!(cli.auths().as_object().unwrap().len(), 2);
}

#[test]
fn t25_blobs_redirected_to_https_storage() {
    let pki = Pki::new();
    let registry = Registry::start_tls(&[], &pki.path("server.crt"), &pki.path("server.key"));
    let certs = scratch("certs-redirect");
    pki.trust(certs.path(), &registry.host(), "ca.crt");
    let d = Daemon::start_with(
        "redirect",
        &["--registry-certs-dir", certs.path().to_str().unwrap()],
    );
    let cli = Cli::new(&d);
    d.import_busybox();
    let pushed_name = format!("{}/storage/busybox:1", registry.host());
    cli.ok(&["image", "tag", "busybox:test", &pushed_name]);
    cli.ok(&["image", "push", &pushed_name]);
    let pushed = cli.inspect(&pushed_name);
    cli.ok(&["image", "rm", &pushed_name]);
    cli.ok(&["image", "rm", "busybox:test"]);

    eprintln!("--- a plain-HTTP registry front whose blobs live behind HTTPS");
    let proxy = Proxy::start(
        &format!("https://{}", registry.host()),
        Some(&certs.path().join(registry.host())),
    );
    proxy.redirect_blobs_to(&format!("https://{}", registry.host()));
    // The front's own certs.d entry trusts the storage's CA; --insecure keeps the front
    // itself on plain HTTP.
    pki.trust(certs.path(), &proxy.host(), "ca.crt");
    let name = format!("{}/storage/busybox:1", proxy.host());
    cli.ok(&["image", "pull", "--insecure", &name]);
    assert_eq!(cli.inspect(&name)["Id"], pushed["Id"]);
    let layers = pushed["RootFS"]["Layers"].as_array().unwrap().len();
    let redirected = proxy
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && blob_digest_of(&r.path).is_some())
        .count();
    assert!(redirected >= layers, "blob GETs went through the redirect");
}

// --- t30: a pull cut by a daemon crash ----------------------------------------------------

/// A child process killed on drop (a test that fails leaves no CLI behind).
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

#[test]
fn t30_pull_cut_by_a_daemon_crash_resumes_without_refetching() {
    let tmp = scratch("crash-pull");
    let registry = Registry::start(&[]);
    let proxy = Proxy::start(&format!("http://{}", registry.host()), None);

    eprintln!("--- a three-layer image of 5 MiB in the registry");
    let mut big = TarBuilder::new();
    big.dir("data/", 0o755)
        .file("data/big.bin", &noise(4 << 20, 31));
    let mut mid = TarBuilder::new();
    mid.dir("opt/", 0o755)
        .file("opt/mid.bin", &noise(1 << 20, 32));
    let mut tiny = TarBuilder::new();
    tiny.file("hello.txt", b"hello\n");
    let image = BuiltImage::new(
        vec![
            Layer::plain(big.finish()),
            Layer::gzip(mid.finish()),
            Layer::plain(tiny.finish()),
        ],
        &["/bin/sh"],
    );
    let source = ImageStore::open(tmp.path().join("source")).unwrap();
    let pushed_name = format!("{}/crash/app:1", registry.host());
    image.store(&source, &[&pushed_name]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let push = PushOptions {
        insecure: true,
        ..PushOptions::default()
    };
    runtime.block_on(source.push(&pushed_name, &push)).unwrap();
    let big_digest = Digest::of(&image.layers[0].blob);
    let others: Vec<(Digest, u64)> = image
        .blobs()
        .into_iter()
        .skip(1) // the manifest is not a download
        .filter(|(d, _)| *d != big_digest)
        .map(|(d, bytes)| (d, bytes.len() as u64))
        .collect();

    eprintln!("--- pull through the proxy; the big layer stops after 1 MiB");
    let mut d = Daemon::start("crash-pull");
    let cli = Cli::new(&d);
    let stall_at = 1 << 20;
    proxy.stall(&big_digest, stall_at);
    let name = format!("{}/crash/app:1", proxy.host());
    let blobs = d.dir.path().join("data/images/blobs/sha256");
    let partial = |digest: &Digest| blobs.join(format!(".partial-{}", digest.hex()));
    let log = std::fs::File::create(tmp.path().join("first-pull.log")).unwrap();
    let mut first = Reaped(
        cli.command(&["image", "pull", &name])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let big_done = file_len(&partial(&big_digest)) >= stall_at as u64;
        let others_done = others
            .iter()
            .all(|(digest, size)| file_len(&partial(digest)) == *size);
        if big_done && others_done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pull never reached the stall: {:?}",
            std::fs::read_dir(&blobs)
                .map(|e| e.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    eprintln!("--- SIGKILL the daemon in the middle of the layer");
    d.kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = first.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the CLI outlived its daemon");
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!(
        "first pull: {status:?}\n{}",
        std::fs::read_to_string(tmp.path().join("first-pull.log")).unwrap()
    );
    assert!(!status.success(), "the cut pull must fail");
    assert!(
        !blobs.join(big_digest.hex()).exists(),
        "no partial blob committed"
    );
    let kept = file_len(&partial(&big_digest));
    assert_eq!(kept, stall_at as u64, "the partial holds what arrived");

    eprintln!("--- restart: nothing was committed");
    d.restart();
    let out = cli.fails(&["image", "inspect", &name]);
    assert!(out.contains("no such image"), "{out}");
    assert!(!cli.ok(&["image", "ls"]).contains("crash/app"));

    eprintln!("--- pull again: only the rest of the big layer crosses the network");
    let out = cli.ok(&["image", "pull", &name]);
    assert!(out.contains("Downloaded image"), "{out}");
    let fetches = proxy.blob_fetches(&big_digest);
    assert_eq!(fetches.len(), 2, "{fetches:?}");
    assert_eq!(fetches[0].range, None);
    assert_eq!(
        fetches[1].range.as_deref(),
        Some(&*format!("bytes={kept}-"))
    );
    for (digest, _) in &others {
        assert_eq!(
            proxy.blob_fetches(digest).len(),
            1,
            "{digest} was fetched again: {:?}",
            proxy.requests()
        );
    }

    eprintln!("--- the digests are the registry's, the store is consistent");
    let client =
        RegistryClient::new(&registry.host(), true, None, Path::new("/nonexistent")).unwrap();
    let (manifest, _) = runtime
        .block_on(client.get_manifest("crash/app", "1", 1 << 20))
        .unwrap();
    let inspect = cli.inspect(&name);
    assert_eq!(inspect["ManifestDigest"], Digest::of(&manifest).to_string());
    assert_eq!(inspect["Id"], image.id().to_string());
    let mut checked = 0;
    for entry in std::fs::read_dir(&blobs).unwrap().flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        assert!(!file.starts_with('.'), "left behind: {file}");
        let bytes = std::fs::read(entry.path()).unwrap();
        assert_eq!(
            Digest::of(&bytes).hex(),
            file,
            "blob {file} is not its digest"
        );
        checked += 1;
    }
    assert!(checked >= image.blobs().len(), "{checked} blobs");
    for (digest, bytes) in image.blobs() {
        assert_eq!(std::fs::read(blobs.join(digest.hex())).unwrap(), bytes);
    }
}

/// Bytes that do not compress (a xorshift stream), so a layer is as big as we say.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
