//! The container index under real concurrency, on one real daemon: of many creates with one
//! name sent at once, exactly one gets it and the others Docker's 409 conflict; many creates
//! with their own names all succeed in parallel; lookups by name, `/name`, full id and
//! unique id prefix work and a prefix shared by two ids is refused; a daemon restart reads
//! the records again (names still taken, prefixes still resolved); removals free the names.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};

use common::daemon::Daemon;
use common::http::{Api, Reply, TIMEOUT};
use serde_json::{Value, json};

/// Creates sent at once with one name.
const SAME_NAME: usize = 8;
/// Creates sent at once, each with its own name: more than 16, so that two ids share their
/// first hex digit.
const DISTINCT: usize = 20;

fn create(api: &Api, name: &str) -> Reply {
    api.post(
        &format!("/containers/create?name={name}"),
        &json!({"Image": "busybox:test", "Cmd": ["sleep", "1000"]}),
    )
    .unwrap_or_else(|e| panic!("create {name}: {e}"))
}

/// `op(i)` for every `i < n` on its own thread, all released together; the results in order.
fn at_once<T: Send + 'static>(n: usize, op: impl Fn(usize) -> T + Send + Sync + 'static) -> Vec<T> {
    let (start, op) = (Arc::new(Barrier::new(n)), Arc::new(op));
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let (start, op) = (start.clone(), op.clone());
            std::thread::spawn(move || {
                start.wait();
                op(i)
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

fn ids(api: &Api) -> BTreeSet<String> {
    api.get_ok("/containers/json?all=1")
        .as_array()
        .expect("a list")
        .iter()
        .map(|c| c["Id"].as_str().expect("an Id").to_owned())
        .collect()
}

fn inspect(api: &Api, reference: &str) -> Reply {
    api.get(&format!("/containers/{reference}/json"))
        .unwrap_or_else(|e| panic!("inspect {reference}: {e}"))
}

/// Lookups by name, `/name`, full id, a unique prefix; a shared prefix is refused.
fn check_lookups(api: &Api, names: &[(String, String)]) {
    let all: Vec<&String> = names.iter().map(|(_, id)| id).collect();
    for (name, id) in names {
        for reference in [name.clone(), format!("%2F{name}"), id.clone()] {
            let reply = inspect(api, &reference);
            assert!(reply.ok(), "inspect {reference}: {reply}");
            assert_eq!(reply.json()["Id"], Value::from(id.as_str()), "{reference}");
            assert_eq!(reply.json()["Name"], Value::from(format!("/{name}")));
        }
        let unique = (1..=id.len())
            .map(|n| &id[..n])
            .find(|p| all.iter().filter(|other| other.starts_with(p)).count() == 1)
            .expect("a unique prefix");
        let reply = inspect(api, unique);
        assert_eq!(
            reply.json()["Id"],
            Value::from(id.as_str()),
            "prefix {unique}"
        );
    }
    // More ids than hex digits: two share their first digit.
    let shared = (0..16)
        .map(|d| format!("{d:x}"))
        .find(|p| all.iter().filter(|id| id.starts_with(p.as_str())).count() > 1)
        .expect("a shared first digit");
    let reply = inspect(api, &shared);
    assert_eq!(reply.status, 400, "ambiguous prefix {shared}: {reply}");
    assert!(reply.message().contains("multiple containers"), "{reply}");
    let reply = inspect(api, "no-such-container");
    assert_eq!(reply.status, 404, "{reply}");
}

#[test]
fn t92_concurrent_creates_names_lookups_and_restart() {
    let mut d = Daemon::start("t92");
    d.import_busybox();
    let api = Api::new(&d.socket);

    eprintln!("--- {SAME_NAME} creates named web at once: one wins, the others conflict");
    let socket = d.socket.clone();
    let replies = at_once(SAME_NAME, move |_| create(&Api::new(&socket), "web"));
    let won: Vec<&Reply> = replies.iter().filter(|r| r.ok()).collect();
    assert_eq!(
        won.len(),
        1,
        "exactly one create gets the name: {replies:?}"
    );
    let web = won[0].json()["Id"].as_str().expect("an Id").to_owned();
    for r in replies.iter().filter(|r| !r.ok()) {
        assert_eq!(r.status, 409, "{r}");
        assert_eq!(
            r.message(),
            "Conflict. The container name \"/web\" is already in use"
        );
    }
    assert_eq!(
        ids(&api),
        BTreeSet::from([web.clone()]),
        "one container, no leftovers"
    );

    eprintln!("--- {DISTINCT} creates with their own names at once, then started at once");
    let socket = d.socket.clone();
    let replies = at_once(DISTINCT, move |i| {
        create(&Api::new(&socket), &format!("c{i}"))
    });
    let mut names = vec![("web".to_owned(), web.clone())];
    for (i, r) in replies.iter().enumerate() {
        assert_eq!(r.status, 201, "create c{i}: {r}");
        names.push((format!("c{i}"), r.json()["Id"].as_str().unwrap().to_owned()));
    }
    let socket = d.socket.clone();
    let started = at_once(DISTINCT, move |i| {
        Api::new(&socket).request("POST", &format!("/containers/c{i}/start"), None, TIMEOUT)
    });
    for (i, r) in started.into_iter().enumerate() {
        let r = r.unwrap_or_else(|e| panic!("start c{i}: {e}"));
        assert_eq!(r.status, 204, "start c{i}: {r}");
    }
    let running = api.get_ok("/containers/json").as_array().unwrap().len();
    assert_eq!(running, DISTINCT, "all started (web was only created)");
    assert_eq!(ids(&api).len(), DISTINCT + 1);
    check_lookups(&api, &names);

    eprintln!("--- restart: the records are read again");
    d.restart();
    let api = Api::new(&d.socket);
    assert_eq!(
        ids(&api),
        names.iter().map(|(_, id)| id.clone()).collect(),
        "the same containers"
    );
    check_lookups(&api, &names);
    let again = create(&api, "web");
    assert_eq!(again.status, 409, "the name is still taken: {again}");
    let running = api.get_ok("/containers/json").as_array().unwrap().len();
    assert_eq!(running, DISTINCT, "the containers outlived the daemon");

    eprintln!("--- removed at once: the names are free again");
    let socket = d.socket.clone();
    let refs: Vec<String> = names.iter().map(|(name, _)| name.clone()).collect();
    let removed = at_once(refs.len(), move |i| {
        Api::new(&socket).delete(&format!("/containers/{}?force=1", refs[i]))
    });
    for r in removed {
        let r = r.expect("remove");
        assert_eq!(r.status, 204, "{r}");
    }
    assert!(ids(&api).is_empty(), "no container left");
    assert_eq!(inspect(&api, "web").status, 404);
    let fresh = create(&api, "web");
    assert_eq!(fresh.status, 201, "the name is free: {fresh}");
    let id = fresh.json()["Id"].as_str().unwrap().to_owned();
    assert_ne!(id, web);
    let r = api.delete(&format!("/containers/{id}")).unwrap();
    assert_eq!(r.status, 204, "{r}");
    d.assert_no_runtime_leftovers();
}
