//! Writes records to a hub as fast as it can, printing `ack <id>` after each write the API
//! acknowledged. The crash test kills it with SIGKILL at arbitrary moments.
//!
//! Usage: crash-writer STORE PASSPHRASE SEED

use std::io::Write;

use aidmesh_hub::model::Kind;
use aidmesh_hub::{Config, Hub, InitOptions, SystemClock};
use serde_json::json;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (path, pass, seed) = (std::path::Path::new(&args[1]), &args[2], args[3].parse::<u8>().unwrap_or(1));
    let config = Config { handle: "writer".into(), clock: Box::new(SystemClock), seed: [seed; 32] };
    let mut hub = if path.exists() {
        Hub::open(path, pass, config).expect("open")
    } else {
        Hub::init(path, pass, &InitOptions { hub_name: "Crash".into(), location: String::new(), pin: None }, config)
            .expect("init")
    };
    let place = match hub.stored(Kind::Place, 1, 0).expect("list").first() {
        Some(p) => p.id().to_string(),
        None => {
            hub.add(Kind::Place, json!({"name": "Hall"}).as_object().unwrap().clone()).expect("place").id().to_string()
        }
    };
    let out = std::io::stdout();
    for n in 0u64.. {
        let item = hub
            .add(Kind::Item, json!({"name": format!("item {n}"), "unit": "box"}).as_object().unwrap().clone())
            .expect("item");
        writeln!(out.lock(), "ack {}", item.id()).unwrap();
        let m = hub
            .add(
                Kind::Movement,
                json!({"item": item.id(), "type": "receive", "quantity": 1 + n % 7, "place": place})
                    .as_object()
                    .unwrap()
                    .clone(),
            )
            .expect("movement");
        writeln!(out.lock(), "ack {}", m.id()).unwrap();
    }
}
