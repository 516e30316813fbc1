//! Every field the hub's forms can show has a label in every language of the UI: a form in
//! Arabic with an English field name in it is a form a coordinator cannot read.

use std::collections::BTreeSet;

use aidmesh_hub::model::Kind;

fn ui_source(file: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/src/lib").join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The keys of the one-line object literal on `line` (`{ key: "value", … }`).
fn keys_of(line: &str) -> BTreeSet<String> {
    let body = &line[line.find('{').unwrap() + 1..line.rfind('}').unwrap()];
    let mut keys = BTreeSet::new();
    let mut in_string = false;
    let mut token = String::new();
    for c in body.chars() {
        match c {
            '"' => in_string = !in_string,
            ':' if !in_string => {
                keys.insert(token.trim().to_string());
                token.clear();
            }
            ',' if !in_string => token.clear(),
            _ if !in_string => token.push(c),
            _ => {}
        }
    }
    keys
}

#[test]
fn every_form_field_has_a_label_in_every_language() {
    let options = ui_source("options.ts");
    let hidden_line = options.lines().find(|l| l.starts_with("export const HIDDEN")).expect("HIDDEN in options.ts");
    let hidden: BTreeSet<&str> = hidden_line.split('"').skip(1).step_by(2).collect();
    let fields: BTreeSet<String> = Kind::ALL
        .iter()
        .flat_map(|k| k.template().to_fields().keys().cloned().collect::<Vec<_>>())
        .filter(|f| !hidden.contains(f.as_str()))
        .collect();
    assert!(fields.contains("reorder_level") && fields.contains("name"), "{fields:?}");
    let i18n = ui_source("i18n.ts");
    let table = &i18n[i18n.find("const FIELD_LABELS").expect("FIELD_LABELS in i18n.ts")..];
    for lang in ["es", "fr", "ar"] {
        let line = table.lines().find(|l| l.trim_start().starts_with(&format!("{lang}: {{"))).unwrap();
        let labelled = keys_of(line);
        let missing: Vec<&String> = fields.iter().filter(|f| !labelled.contains(*f)).collect();
        assert!(missing.is_empty(), "{lang} has no label for {missing:?}");
    }
}
