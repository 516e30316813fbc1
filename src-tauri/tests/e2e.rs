//! End to end: the real app binary in a real window (Xvfb), driven over WebDriver, with a real
//! second hub (`aidmesh serve` on loopback) syncing over TLS. Screenshots of the main screens go
//! to target/screenshots (`cargo xtask screenshots` refreshes docs/screenshots/, which the README
//! and the user guide show). Every screen visited is
//! checked by axe-core for WCAG 2 A/AA violations.

mod driver;

use std::path::PathBuf;
use std::time::Duration;

use driver::{App, Cli, Display, PASS};
use serde_json::json;

/// Where screenshots go: target/screenshots, so that a test run leaves the working tree as it
/// was; `cargo xtask screenshots` points AIDMESH_SCREENSHOTS at docs/screenshots to refresh the
/// docs' pictures.
fn shots() -> PathBuf {
    let dir = std::env::var_os("AIDMESH_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A screenshot of the screen from its top, for the docs.
fn shot(app: &App, name: &str) {
    app.js("document.querySelector('main').scrollTo(0, 0); return true", json!([]));
    app.screenshot(&shots().join(name));
}

fn screen(app: &App, name: &str) {
    app.click(&format!("nav button[data-screen=\"{name}\"]"));
    app.find(&format!("nav button[data-screen=\"{name}\"][aria-current=\"page\"]"));
    std::thread::sleep(Duration::from_millis(300));
}

fn no_axe_violations(app: &App, what: &str) {
    let v = app.axe();
    assert!(v.is_empty(), "{what}: accessibility violations: {}", serde_json::to_string_pretty(&v).unwrap());
}

/// Submits the form for `kind` (the first one on the screen) and waits for its outcome.
fn save(app: &App, form: &str) {
    app.click(&format!("{form} button[type=submit]"));
    let t = app.wait_text(form, 10, |t| t.contains("Saved") || t.contains("Error"));
    assert!(!t.contains("Error"), "{form}: {t}");
}

/// Clicks "Save PDF" in the print bar of `sheet` and answers the file it reports.
fn save_pdf(app: &App, sheet: &str) -> PathBuf {
    let bar = format!("[data-sheet={sheet}]");
    app.click(&format!("{bar} button.save-pdf"));
    let t = app.wait_text(&bar, 60, |t| t.contains("Saved: ") || t.contains("Error"));
    let path = PathBuf::from(t.split("Saved: ").nth(1).unwrap_or_else(|| panic!("{sheet}: {t}")).trim());
    assert!(path.exists(), "{} was reported saved", path.display());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{} is readable by its owner only", path.display());
    path
}

fn poppler(tool: &str, args: &[&std::ffi::OsStr]) -> String {
    let out = std::process::Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool} (apt-get install poppler-utils): {e}"));
    assert!(out.status.success(), "{tool}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// pdfinfo's page size line and page count, e.g. "Page size: 595.276 x 841.89 pts (A4)".
fn pdf_info(pdf: &std::path::Path) -> String {
    poppler("pdfinfo", &[pdf.as_os_str()])
        .lines()
        .filter(|l| l.starts_with("Page size") || l.starts_with("Pages"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn pdf_text(pdf: &std::path::Path) -> String {
    poppler("pdftotext", &[pdf.as_os_str(), std::ffi::OsStr::new("-")])
}

/// The first page as a small PNG in docs/screenshots, for the user guide.
fn pdf_shot(pdf: &std::path::Path, name: &str) {
    let out = shots().join(name);
    let mut args: Vec<&std::ffi::OsStr> =
        ["-png", "-r", "60", "-f", "1", "-l", "1", "-singlefile"].into_iter().map(std::ffi::OsStr::new).collect();
    args.extend([pdf.as_os_str(), out.as_os_str()]);
    poppler("pdftoppm", &args);
}

#[test]
fn a_coordinator_runs_a_hub_from_the_desktop_app() {
    let data = tempfile::tempdir().unwrap();
    let display = Display::start();
    let data_dir = data.path().join("app");
    let pdf_dir = data.path().join("pdf");
    // The `aidmesh` command on the app's hub: it runs inside the running app.
    let north = Cli { store: data_dir.join("hub.aidmesh"), handle: "kestrel".into() };
    let app = App::launch(
        &display,
        &[
            ("AIDMESH_DATA_DIR", data_dir.to_str().unwrap()),
            ("AIDMESH_PDF_DIR", pdf_dir.to_str().unwrap()),
            ("AIDMESH_LISTEN", "127.0.0.1:0"),
            ("AIDMESH_NO_DISCOVERY", "1"),
        ],
    );

    // First start: found a coalition. A short passphrase is refused with the reason.
    app.fill("#s-hub", "North Hall");
    app.fill("#s-loc", "Main square");
    app.fill("#s-handle", "kestrel");
    app.fill("#s-pass", "short");
    app.fill("#s-again", "short");
    app.click("form button[type=submit]");
    let err = app.wait_text("main.start [role=alert]", 10, |t| !t.is_empty());
    assert!(err.contains("at least 8 characters"), "{err}");
    assert!(!data_dir.join("hub.aidmesh").exists(), "a refused start creates nothing");
    no_axe_violations(&app, "first start");
    shot(&app, "first-start.png");
    app.fill("#s-pass", PASS);
    app.fill("#s-again", PASS);
    app.click("form button[type=submit]");
    app.find("nav button[data-screen=overview][aria-current=page]");
    app.wait_text("main", 10, |t| t.contains("North Hall"));
    assert!(data_dir.join("hub.aidmesh").exists());

    // Inventory: a place, an item, stock received and issued; the level follows.
    screen(&app, "inventory");
    app.fill("form[data-kind=place] [name=name]", "Gate 2 tent");
    save(&app, "form[data-kind=place]");
    app.fill("form[data-kind=item] [name=name]", "Water");
    app.fill("form[data-kind=item] [name=unit]", "bottle");
    app.fill("form[data-kind=item] [name=reorder_level]", "30");
    save(&app, "form[data-kind=item]");
    let place = app.first_option("form[data-kind=movement] [name=place]");
    app.choose("form[data-kind=movement] [name=place]", &place);
    app.fill("form[data-kind=movement] [name=quantity]", "20");
    save(&app, "form[data-kind=movement]");
    app.wait_text("td.num", 10, |t| t.starts_with("20"));
    app.choose("form[data-kind=movement] [name=type]", "issue");
    app.choose("form[data-kind=movement] [name=place]", &place);
    app.fill("form[data-kind=movement] [name=quantity]", "5");
    save(&app, "form[data-kind=movement]");
    let level = app.wait_text("td.num", 10, |t| t.starts_with("15"));
    assert!(level.contains("⚠"), "below the reorder level of 30, and said so in words: {level}");
    app.wait_text("section[aria-labelledby=inv-detail]", 10, |t| t.contains("receive 20") && t.contains("issue 5"));
    shot(&app, "inventory.png");
    // A bad movement is refused with the field named, and nothing changes.
    app.fill("form[data-kind=movement] [name=quantity]", "0");
    app.click("form[data-kind=movement] button[type=submit]");
    let t = app.wait_text("form[data-kind=movement]", 10, |t| t.contains("Error"));
    assert!(t.contains("quantity"), "{t}");
    app.wait_text("td.num", 2, |t| t.starts_with("15"));
    no_axe_violations(&app, "inventory");

    // Incidents: the quick form has time and place filled in.
    screen(&app, "incidents");
    let occurred = app.js("return document.querySelector('form[data-kind=incident] [name=occurred]').value", json!([]));
    assert!(!occurred.as_str().unwrap_or_default().is_empty(), "the time is prefilled");
    app.fill("form[data-kind=incident] [name=description]", "Medic called to gate 2, heat exhaustion");
    app.choose("form[data-kind=incident] [name=severity]", "3");
    save(&app, "form[data-kind=incident]");
    app.wait_text("table", 10, |t| t.contains("heat exhaustion"));
    // A correction: the severity, with the field's own control; the log shows the amended
    // record, marked, and the original stays (show has it).
    let incident = app.first_option("#am-target");
    app.choose("#am-target", &incident);
    app.choose("#am-field", "severity");
    // The correction starts from the record's current severity, in a choice of severities.
    let mut current = serde_json::Value::Null;
    for _ in 0..50 {
        current = app.js(
            "const e = document.querySelector('#am-value'); return [e.tagName, e.value, e.selectedOptions[0]?.textContent]",
            json!([]),
        );
        if current[1] == "3" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(current, json!(["SELECT", "3", "3 – serious"]));
    app.choose("#am-value", "4");
    app.fill("#am-reason", "two people treated, not one");
    app.click("form[aria-labelledby=in-am] button[type=submit]");
    app.wait_text("form[aria-labelledby=in-am]", 10, |t| t.contains("Saved"));
    let log = app.wait_text(&format!("section[aria-labelledby=in-log] tr[data-id=\"{incident}\"]"), 10, |t| {
        t.contains("4 – severe")
    });
    assert!(log.contains("amended"), "the log marks the correction: {log}");
    no_axe_violations(&app, "incidents");
    shot(&app, "incidents.png");

    // By keyboard alone: from the top of the page to the Incidents screen, a report typed and
    // saved without the mouse, and every control of the screen reachable by Tab.
    app.js("document.querySelector('a.skip').focus(); return true", json!([]));
    app.tab_to("e.dataset.screen === 'incidents'", 30);
    app.keys("\u{E007}");
    app.find("nav button[data-screen=incidents][aria-current=page]");
    app.tab_to("e.form?.dataset.kind === 'incident' && e.name === 'description'", 20);
    app.keys("Crowd crush warning at the north gate");
    app.tab_to("e.form?.dataset.kind === 'incident' && e.type === 'submit'", 20);
    app.keys("\u{E007}");
    app.wait_text("table", 10, |t| t.contains("Crowd crush warning"));
    let missed = app.js(
        "const all = [...document.querySelectorAll('main button, main input, main select, main textarea, main a[href]')]
           .filter(e => !e.disabled && e.offsetParent !== null && e.tabIndex >= 0);
         window.__reached = new Set();
         document.addEventListener('focusin', ev => window.__reached.add(ev.target));
         document.querySelector('a.skip').focus();
         return all.length",
        json!([]),
    );
    // Date and time fields take one Tab per part (day, month, year, hours, minutes); the focus
    // inside one is the field itself for the page.
    let controls = missed.as_u64().unwrap() as usize;
    for _ in 0..controls * 6 + 20 {
        app.keys("\u{E004}");
        app.js("window.__reached.add(document.activeElement); return true", json!([]));
    }
    let missed = app.js(
        "return [...document.querySelectorAll('main button, main input, main select, main textarea, main a[href]')]
           .filter(e => !e.disabled && e.offsetParent !== null && e.tabIndex >= 0 && !window.__reached.has(e))
           .map(e => e.outerHTML.slice(0, 80))",
        json!([]),
    );
    assert_eq!(missed, json!([]), "controls on the incidents screen that Tab never reached");

    // Roster: a volunteer, a shift, an assignment.
    screen(&app, "roster");
    app.fill("form[data-kind=volunteer] [name=handle]", "swift-otter");
    app.click("form[data-kind=volunteer] input[name=skills][value=first_aid]");
    app.fill("form[data-kind=volunteer] [name=languages]", "ar, en");
    save(&app, "form[data-kind=volunteer]");
    app.fill("form[data-kind=role] [name=name]", "Medic");
    app.fill("form[data-kind=role] [name=outputs]", "First aid at the gates");
    save(&app, "form[data-kind=role]");
    let role = app.first_option("form[data-kind=shift] [name=role]");
    app.choose("form[data-kind=shift] [name=role]", &role);
    let place = app.first_option("form[data-kind=shift] [name=place]");
    app.choose("form[data-kind=shift] [name=place]", &place);
    app.js(
        "for (const [n, v] of [['start', '2026-11-26T14:00'], ['end', '2026-11-26T18:00']]) {
           const e = document.querySelector('form[data-kind=shift] [name=' + n + ']');
           e.value = v; e.dispatchEvent(new Event('input', {bubbles: true})); }
         return true",
        json!([]),
    );
    app.fill("form[data-kind=shift] [name=needed]", "2");
    save(&app, "form[data-kind=shift]");
    let shift = app.first_option("form[data-kind=assignment] [name=shift]");
    let vol = app.first_option("form[data-kind=assignment] [name=volunteer]");
    app.choose("form[data-kind=assignment] [name=shift]", &shift);
    app.choose("form[data-kind=assignment] [name=volunteer]", &vol);
    save(&app, "form[data-kind=assignment]");
    app.wait_text(&format!("tr[data-id=\"{shift}\"]"), 10, |t| t.contains("swift-otter") && t.contains("1/2"));
    no_axe_violations(&app, "roster");
    shot(&app, "roster.png");

    // The shift hands over: a note, which the next shift acknowledges once (an amendment).
    app.choose("form[data-kind=handoff] [name=shift]", &shift);
    app.fill("form[data-kind=handoff] [name=note]", "Gate 2 lock is stiff");
    save(&app, "form[data-kind=handoff]");
    app.click("#ro-handoffs button");
    app.wait_text("#ro-handoffs", 10, |t| t.contains("Gate 2 lock is stiff") && t.contains("read by kestrel"));
    assert!(!app.exists("#ro-handoffs button"), "acknowledged once, the button is gone");

    // Contacts: swift-otter's phone and access needs go in the vault, kept here (no consent to
    // share); they are shown only for a reason, the read is logged under kestrel's name, and
    // they are erased. The roster's form never asked for access needs (health data).
    assert!(!app.exists("form[data-kind=volunteer] [name=access_needs]"));
    screen(&app, "contacts");
    app.click("button[aria-label=\"Open: swift-otter\"]");
    app.fill("#co-name", "Samira Otter");
    app.fill("#co-phone", "+34 600 111 222");
    app.fill("#co-needs", "step-free access");
    app.click("#co-one-card form:last-of-type button[type=submit]");
    app.wait_text("#co-one-card", 10, |t| t.contains("Saved, kept at this hub only."));
    assert!(!app.text("main").contains("+34 600 111 222"), "nothing is shown without a reason");
    app.fill("#co-reason", "no");
    app.click("#co-one-card form button.primary");
    app.wait_text("main", 10, |t| t.contains("every read is logged"));
    app.fill("#co-reason", "call about the evening shift");
    app.click("#co-one-card form button.primary");
    app.wait_text("#co-shown", 10, |t| {
        t.contains("+34 600 111 222") && t.contains("Access needs") && t.contains("step-free access")
    });
    app.wait_text("#co-read-log", 10, |t| t.contains("kestrel") && t.contains("call about the evening shift"));
    let reads = north.run(&["vault", "reads"]);
    assert_eq!(reads[0]["reason"], json!("call about the evening shift"), "{reads}");
    no_axe_violations(&app, "contacts");
    shot(&app, "contacts.png");
    app.click("#co-erase");
    app.click("#co-erase-yes");
    app.wait_text("main", 10, |t| t.contains("Erased: the contact and its key are destroyed."));
    assert!(!app.text("main").contains("+34 600 111 222") && !app.text("main").contains("step-free access"));
    screen(&app, "roster");

    // Check-in, and the ICS-211 check-in list saved as a PDF on A4 paper (the default).
    app.choose("form[data-kind=check_in] [name=volunteer]", &vol);
    save(&app, "form[data-kind=check_in]");
    app.wait_text("main", 10, |t| t.contains("Check out"));
    let pdf = save_pdf(&app, "ics-211");
    let info = pdf_info(&pdf);
    assert!(info.contains("595 x 842 pts (A4)"), "{info}");
    let text = pdf_text(&pdf);
    assert!(text.contains("ICS 211") && text.contains("swift-otter"), "the sheet lists the check-in: {text}");
    assert!(!text.contains("Medic called"), "only the ICS-211 sheet is on the paper: {text}");
    pdf_shot(&pdf, "print-ics211-a4");
    // Checked out from the roster: an amendment, shown on the sheet, the button gone.
    app.click("button[aria-label^='Check out:']");
    app.wait_text("main", 10, |_| !app.exists("button[aria-label^='Check out:']"));
    let shown = north.run(&["list", "check_in"]);
    assert!(shown[0]["checked_out"].is_string() && shown[0]["amended"] == json!(true), "{shown}");

    // Accountability: a confidential grievance is withheld from whoever is not among its readers,
    // the person who recorded it included.
    screen(&app, "accountability");
    app.fill("form[data-kind=grievance] [name=summary]", "Marshal shouted at a volunteer");
    app.choose("form[data-kind=grievance] [name=confidential]", "true");
    app.fill("form[data-kind=grievance] [name=readers]", "owl, heron");
    save(&app, "form[data-kind=grievance]");
    let t = app.wait_text("section[aria-labelledby=ac-g] table", 10, |t| t.contains("Confidential"));
    assert!(!t.contains("shouted"), "kestrel is not a reader: {t}");
    // An open grievance is moved on with dated steps, to resolved.
    app.fill("form[data-kind=grievance] [name=summary]", "Kitchen rota unfair to the night shift");
    app.fill("form[data-kind=grievance] [name=facilitator]", "kestrel");
    save(&app, "form[data-kind=grievance]");
    // The form still reads "Saved" from the first grievance: wait for the list to show this one.
    app.wait_text("section[aria-labelledby=ac-g] table", 10, |t| t.contains("Kitchen rota"));
    let g = app
        .js("return [...document.querySelectorAll('details[data-grievance]')].map(d => d.dataset.grievance)", json!([]))
        .as_array()
        .and_then(|a| a.first().cloned())
        .and_then(|v| v.as_str().map(str::to_string))
        .expect("the readable grievance offers its steps");
    let steps = format!("details[data-grievance=\"{g}\"]");
    let open = |app: &driver::App| {
        app.js("document.querySelector(arguments[0]).open = true; return true", json!([steps]));
    };
    open(&app);
    app.fill(&format!("#ac-note-{g}"), "Met both shifts");
    app.choose(&format!("#ac-st-{g}"), "investigating");
    app.click(&format!("{steps} button"));
    app.wait_text(&steps, 10, |t| t.contains("Steps (1)"));
    open(&app);
    app.choose(&format!("#ac-st-{g}"), "resolved");
    app.fill(&format!("#ac-res-{g}"), "Rota redone together");
    app.click(&format!("{steps} button"));
    open(&app);
    let t = app.wait_text(&steps, 10, |t| t.contains("Steps (2)") && t.contains("Rota redone together"));
    assert!(t.contains("Met both shifts") && t.contains("Rota redone together"), "{t}");
    assert_eq!(north.run(&["show", &g])["record"]["status"], json!("resolved"));
    no_axe_violations(&app, "accountability");

    // Arabic, right to left, and back.
    screen(&app, "settings");
    app.choose("#se-lang-select", "ar");
    app.wait_text("nav", 5, |t| t.contains("الإعدادات"));
    let dir = app.js("return document.documentElement.dir", json!([]));
    assert_eq!(dir, json!("rtl"));
    no_axe_violations(&app, "settings in Arabic");
    // The forms read in Arabic: no field keeps its English name.
    screen(&app, "inventory");
    let latin = app.js(
        "return [...document.querySelectorAll('main form label')].map(l => l.innerText).filter(t => /[A-Za-z]/.test(t))",
        json!([]),
    );
    assert_eq!(latin, json!([]), "form labels left in English");
    shot(&app, "inventory-arabic.png");
    screen(&app, "settings");
    app.choose("#se-lang-select", "en");
    app.wait_text("nav", 5, |t| t.contains("Settings"));
    // Letter paper: the ICS-214 activity log saved as a PDF lists the incident.
    app.click("#se-letter");
    screen(&app, "incidents");
    let pdf = save_pdf(&app, "ics-214");
    let info = pdf_info(&pdf);
    assert!(info.contains("612 x 792 pts (letter)"), "{info}");
    let text = pdf_text(&pdf);
    assert!(text.contains("ICS 214") && text.contains("heat exhaustion"), "the log lists the incident: {text}");
    assert!(text.contains("4 – severe") && text.contains("amended"), "the sheet has the corrected severity: {text}");
    assert!(!text.contains("3 – serious"), "not the original: {text}");
    pdf_shot(&pdf, "print-ics214-letter");
    screen(&app, "settings");
    app.click("#se-a4");
    // The dark theme passes the same contrast checks.
    app.click("#se-dark");
    assert_eq!(app.js("return document.documentElement.dataset.theme", json!([])), json!("dark"));
    no_axe_violations(&app, "settings, dark theme");
    screen(&app, "inventory");
    no_axe_violations(&app, "inventory, dark theme");
    shot(&app, "inventory-dark.png");
    screen(&app, "settings");
    app.click("#se-light");
    let fingerprint = app.text("#fingerprint");

    // A second hub joins by invite: the app shows a code, `aidmesh join` on the other laptop
    // shows a confirmation code, the coordinator compares it on screen and admits the hub.
    let south = Cli { store: data.path().join("south.aidmesh"), handle: "rook".into() };
    south.run(&["init", "--name", "South Kitchen"]);
    assert_eq!(north.run(&["identity"])["hub_id"], json!(fingerprint), "Settings shows this hub's fingerprint");
    screen(&app, "mesh");
    app.fill("#me-min", "15");
    app.click("#me-invite");
    let code = app.wait_text("#invite-code", 10, |t| t.len() > 20).trim().to_string();
    let mut joiner = south
        .cmd()
        .args(["join", &code, "--name", "South Kitchen"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(joiner.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    let shown =
        line.trim().strip_prefix("Confirmation code: ").unwrap_or_else(|| panic!("join printed {line:?}")).to_string();
    let on_screen = app.wait_text("#invite-confirmation", 20, |t| !t.is_empty());
    assert_eq!(on_screen.trim(), shown, "both screens show the same confirmation code");
    no_axe_violations(&app, "mesh with an invite waiting");
    shot(&app, "invite.png");
    app.click("#invite-admit");
    let status = joiner.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(status.success() && rest.contains("Joined"), "join ended with {status}: {rest}");
    app.wait_text("main", 10, |t| t.contains("South Kitchen") && t.contains("(member)"));
    // A USB bundle for South, written from the Mesh screen (a typed path: the file chooser is
    // the system's) with everything; South imports it with the command and gets North's stock.
    assert!(!south.run(&["search", "Water"]).to_string().contains("Water"), "South has no stock of North's yet");
    let bundle = data.path().join("north.bundle");
    app.fill("#me-path", bundle.to_str().unwrap());
    app.click("#me-full");
    app.click("#me-export");
    app.wait_text("main", 60, |t| t.contains("Wrote "));
    let imported = south.run(&["bundle", "import", bundle.to_str().unwrap()]);
    assert!(south.run(&["search", "Water"]).to_string().contains("Water"), "after the bundle: {imported}");
    // The coalition's purchase policy, and kestrel's role, set on the People screen by kestrel,
    // the founding admin: signed by them, as the command shows.
    screen(&app, "people");
    app.fill("#pe-limit-role-0", "coordinator");
    app.fill("#pe-limit-max-0", "200.001");
    app.fill("#pe-policy-threshold", "100");
    app.fill("#pe-policy-approvals", "2");
    app.click("#pe-policy-save");
    app.wait_text("main", 10, |t| t.contains("at most 2 digits after the point"));
    app.fill("#pe-limit-max-0", "200");
    app.click("#pe-policy-save");
    app.wait_text("#pe-policies", 10, |t| t.contains("coordinator: up to 200.00 EUR; above 100.00 EUR, 2 approvals"));
    // (rook, who joined South by invite, is a person too: the list starts with them.)
    let kestrel = north.run(&["person", "list"])["acting"]["key"].as_str().unwrap().to_string();
    app.choose("#pe-role-who", &kestrel);
    app.fill("#pe-role", "coordinator");
    app.click("#pe-grant");
    app.wait_text(&format!("#pe-table tr[data-key=\"{kestrel}\"] [data-col=roles]"), 10, |t| t == "coordinator");
    let people = north.run(&["person", "list"]);
    let me = people["people"].as_array().unwrap().iter().find(|p| p["handle"] == json!("kestrel")).cloned();
    assert!(me.is_some_and(|p| p.to_string().contains("coordinator")), "{people}");
    // rook becomes an admin too (South's coordinator reads vault entries no record names).
    let rook = people["people"].as_array().unwrap().iter().find(|p| p["handle"] == json!("rook")).unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    app.choose("#pe-standing-who", &rook);
    app.click("#pe-promote");
    app.wait_text(&format!("#pe-table tr[data-key=\"{rook}\"] [data-col=standing]"), 10, |t| t == "admin");
    no_axe_violations(&app, "people");
    shot(&app, "people.png");
    screen(&app, "mesh");
    let (south_proc, south_addr) = south.serve();
    app.fill("#me-addr", &south_addr);
    app.click("#me-connect");
    app.wait_text("main", 20, |t| t.contains(&south_addr) && t.contains("last sync"));
    no_axe_violations(&app, "mesh");
    shot(&app, "mesh.png");

    // The app owns North's store: the `aidmesh` command runs inside it (it never opens the file
    // itself), while North syncs with South and South writes too. Nothing is lost, vault entries
    // cross, and a second owner is refused.
    let south_writer = {
        let south = Cli { store: south.store.clone(), handle: south.handle.clone() };
        std::thread::spawn(move || {
            (0..30)
                .map(|i| south.run(&["add", "item", &format!("name=South crate {i}"), "unit=box"])["id"].clone())
                .collect::<Vec<_>>()
        })
    };
    let mut north_items = Vec::new();
    let mut vault = Vec::new();
    // 300 rounds: a thousand writes (add, update, vault put, every third one erased).
    for i in 0..300 {
        let id = north.run(&["add", "item", &format!("name=North crate {i}"), "unit=box"])["id"]
            .as_str()
            .unwrap()
            .to_string();
        north.run(&["update", &id, &format!("name=North crate {i} (counted)")]);
        let v = north.run(&["vault", "put", &format!("name=Person {i}")])["vault_id"].as_str().unwrap().to_string();
        if i % 3 == 0 {
            north.run(&["vault", "erase", &v]);
        } else {
            vault.push(v);
        }
        north_items.push(id);
    }
    let south_items = south_writer.join().unwrap();
    let ids = |c: &Cli| c.run(&["list", "item", "--limit", "100000"]).to_string();
    for _ in 0..200 {
        let (n, s) = (ids(&north), ids(&south));
        if north_items.iter().all(|i| s.contains(i.as_str()))
            && south_items.iter().all(|i| n.contains(i.as_str().unwrap()))
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (n, s) = (ids(&north), ids(&south));
    assert!(north_items.iter().all(|i| s.contains(i.as_str())), "every North write on South");
    assert!(south_items.iter().all(|i| n.contains(i.as_str().unwrap())), "every South write on North");
    for v in &vault {
        let mut there = false;
        for _ in 0..50 {
            if south.cmd().args(["vault", "show", v, "--reason", "checking sync"]).output().unwrap().status.success() {
                there = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(there, "vault entry {v} on South");
    }
    screen(&app, "inventory");
    app.fill("#inv-search", "North crate 299");
    app.wait_text("table", 20, |t| t.contains("North crate 299 (counted)"));
    app.clear("#inv-search");
    let second = north.cmd().args(["serve", "--listen", "127.0.0.1:0", "--no-discovery"]).output().unwrap();
    assert_eq!(second.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&second.stderr).contains("a hub already runs on"), "{second:?}");

    // South records stock and an expense; both appear on North's screens without a reload.
    screen(&app, "inventory");
    south.run(&["add", "item", "name=Blankets", "unit=blanket"]);
    app.wait_text("table", 20, |t| t.contains("Blankets"));
    let expense = south.run(&[
        "add",
        "expense",
        "date=2026-11-26",
        "amount_minor=4500",
        "currency=EUR",
        "fund=general",
        "payee=Corner bakery",
        "purpose=Bread for the kitchen",
    ])["id"]
        .as_str()
        .unwrap()
        .to_string();
    screen(&app, "ledger");
    let row = format!("tr[data-id=\"{expense}\"]");
    let why = app.wait_text(&row, 20, |t| t.contains("Corner bakery"));
    assert!(why.contains("needs 1 approval"), "the screen says what is missing: {why}");
    no_axe_violations(&app, "ledger");
    shot(&app, "ledger.png");
    app.click(&format!("{row} button.primary"));
    for _ in 0..100 {
        if !app.exists(&format!("section[aria-labelledby=le-un] {row}")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!app.exists(&format!("section[aria-labelledby=le-un] {row}")), "the approved expense left the queue");
    // The approval reached South too, signed by North.
    let mut approved = false;
    for _ in 0..100 {
        let ov = south.run(&["overview"]);
        if ov["unapproved_expenses"].as_array().is_some_and(|a| a.is_empty()) {
            approved = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(approved, "South sees the expense approved");

    // An expense typed in euros and cents, dated today by default.
    app.fill("form[data-kind=expense] [name=payee]", "Hardware store");
    app.fill("form[data-kind=expense] [name=purpose]", "Tarpaulins");
    app.fill("form[data-kind=expense] [name=fund]", "general");
    app.fill("form[data-kind=expense] [name=amount_minor]", "42.5");
    app.click("form[data-kind=expense] button[type=submit]");
    let t = app.wait_text("form[data-kind=expense]", 10, |t| t.contains("Saved") || t.contains("Error"));
    assert!(!t.contains("Error"), "{t}");
    let tarp = north.run(&["list", "expense"]);
    let tarp =
        tarp.as_array().unwrap().iter().find(|e| e["payee"] == "Hardware store").expect("the expense is recorded");
    assert_eq!((tarp["amount_minor"].clone(), tarp["currency"].clone()), (json!(4250), json!("EUR")));
    assert!(tarp["date"].as_str().is_some_and(|d| !d.starts_with("1970")), "dated today: {tarp}");
    app.wait_text("section[aria-labelledby=le-all] table", 10, |t| t.contains("42.50 EUR"));
    app.fill("form[data-kind=expense] [name=amount_minor]", "42.505");
    app.click("form[data-kind=expense] button[type=submit]");
    let t = app.wait_text("form[data-kind=expense]", 10, |t| t.contains("Error"));
    assert!(t.contains("at most 2 digits"), "{t}");

    // The request loop: South asks for blankets by category; North's app suggests its stock in
    // words, allocates, sends and delivers; the stock is issued and the request is fulfilled on
    // both hubs.
    let blanket = north.run(&["add", "item", "name=Thermal blanket", "unit=piece", "category=shelter"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    north.run(&[
        "add",
        "movement",
        "type=receive",
        &format!("item={blanket}"),
        &format!("place={place}"),
        "quantity=10",
    ]);
    let request = south.run(&[
        "add",
        "request",
        "description=Blankets for the night shelter",
        "category=shelter",
        "quantity=6",
        "urgency=high",
    ])["id"]
        .as_str()
        .unwrap()
        .to_string();
    screen(&app, "requests");
    let suggestion = format!("li[data-request=\"{request}\"]");
    let words = app.wait_text(&suggestion, 20, |t| t.contains("Thermal blanket"));
    assert!(
        words.contains("Blankets for the night shelter ← Thermal blanket at Gate 2 tent: covers 6 of 6"),
        "the suggestion reads as words: {words}"
    );
    assert!(words.contains("same category"), "{words}");
    no_axe_violations(&app, "requests");
    shot(&app, "requests.png");
    app.click(&format!("{suggestion} button.primary"));
    app.wait_text("[data-status=matched]", 10, |t| t.contains("Blankets for the night shelter"));
    let alloc = north.run(&["list", "allocation"]);
    let alloc = alloc.as_array().unwrap().iter().find(|a| a["request"] == json!(request)).expect("allocated");
    let alloc = alloc["id"].as_str().unwrap().to_string();
    let row = format!("section[aria-labelledby=rq-alloc] li[data-id=\"{alloc}\"]");
    app.wait_text(&row, 10, |t| t.contains("Thermal blanket in stock at Gate 2 tent (6)"));
    app.click(&format!("{row} button:nth-of-type(1)"));
    app.wait_text("[data-status=in_transit]", 10, |t| t.contains("Blankets for the night shelter"));
    let level = |cli: &Cli| {
        cli.run(&["stock", &blanket]).as_array().map(|l| l.iter().map(|x| x["quantity"].as_i64().unwrap()).sum::<i64>())
    };
    assert_eq!(level(&north), Some(10), "stock leaves on delivery, not before");
    app.click(&format!("{row} button:nth-of-type(2)"));
    app.wait_text("[data-status=fulfilled]", 10, |t| t.contains("Blankets for the night shelter"));
    assert_eq!(level(&north), Some(4), "delivery issued the stock");
    let mut fulfilled = false;
    for _ in 0..100 {
        let r = south.run(&["show", &request]);
        if r["record"]["status"] == "fulfilled" && level(&south) == Some(4) {
            fulfilled = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(fulfilled, "South sees the request fulfilled and the stock issued");

    // Two coordinators rewrite the same notes while their hubs are apart: once they meet, the
    // notes read as one of them wrote them (never a mix of both), and the overview flags the
    // field with both versions for a person, who keeps one; both hubs settle on it.
    drop(south_proc);
    north.run(&["update", &blanket, "notes=Wool, for the night shelter only"]);
    south.run(&["update", &blanket, "notes=Give two per family at the gate"]);
    let (_south_proc, south_addr) = south.serve();
    screen(&app, "mesh");
    app.fill("#me-addr", &south_addr);
    app.click("#me-connect");
    screen(&app, "overview");
    let flagged = format!("li[data-conflict=\"{blanket}\"]");
    app.wait_text(&flagged, 30, |t| t.contains("edited on two hubs"));
    let notes = north.run(&["show", &blanket])["record"]["notes"].as_str().unwrap_or_default().to_string();
    assert!(
        ["Wool, for the night shelter only", "Give two per family at the gate"].contains(&notes.as_str()),
        "the notes read as one coordinator wrote them, not a mix: {notes:?}"
    );
    app.click(&format!("{flagged} button"));
    let both = app.wait_text(&format!("{flagged} ul.versions"), 10, |t| t.contains("Give two per family"));
    assert!(both.contains("Wool, for the night shelter only"), "both versions are shown: {both}");
    shot(&app, "conflict.png");
    app.click(&format!("{flagged} ul.versions li li:nth-of-type(1) button"));
    let mut settled = false;
    for _ in 0..100 {
        let n = north.run(&["show", &blanket]);
        let s = south.run(&["show", &blanket]);
        if n["conflicts"] == json!([]) && s["conflicts"] == json!([]) && n["record"]["notes"] == s["record"]["notes"] {
            settled = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(settled, "the kept version settles the notes on both hubs");

    screen(&app, "overview");
    app.wait_text("main", 10, |t| t.contains("Water"));
    no_axe_violations(&app, "overview");
    shot(&app, "overview.png");

    // Usable on a 1024-wide screen: no screen needs sideways scrolling.
    app.resize(1024, 768);
    for s in
        ["overview", "inventory", "requests", "roster", "incidents", "ledger", "accountability", "mesh", "settings"]
    {
        screen(&app, s);
        let w = app.js(
            "const m = document.querySelector('main');
             return [document.documentElement.scrollWidth, window.innerWidth, m.scrollWidth, m.clientWidth]",
            json!([]),
        );
        let n = |i: usize| w[i].as_i64().unwrap_or(0);
        assert!(n(1) <= 1024 && n(0) <= n(1), "{s} at 1024 px: page {} px wide in a {} px window", n(0), n(1));
        assert!(n(2) <= n(3), "{s} at 1024 px: the screen is {} px wide in {} px", n(2), n(3));
    }

    // A shutdown's SIGTERM quits the app as closing its window does: the hub commits what peers
    // sent last and stops, and the command then opens the store on its own and finds there
    // what the running app had just taken from South.
    let last = south.run(&["add", "item", "name=Tarpaulins", "unit=sheet"])["id"].as_str().unwrap().to_string();
    let mut arrived = false;
    for _ in 0..100 {
        if north.cmd().args(["show", &last]).output().unwrap().status.success() {
            arrived = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(arrived, "South's last item reaches the app");
    let pid = app.pid();
    let term = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(term.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    // Gone, or a zombie its parent (WebKitWebDriver) has not yet reaped.
    let running = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
    };
    while running() {
        assert!(std::time::Instant::now() < deadline, "the app still runs 20 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = app.log();
    assert!(log.contains("asked to stop"), "{log}");
    assert!(log.contains("what peers sent last is committed"), "{log}");
    let kept = north.run(&["show", &last]);
    assert_eq!(kept["record"]["name"], "Tarpaulins", "{kept}");
}
