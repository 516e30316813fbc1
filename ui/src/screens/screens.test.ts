import { describe, expect, it, vi } from "vitest";
import { fireEvent, render, screen, waitFor, within } from "@testing-library/svelte";
import { mockBackend } from "../lib/mock";
import FirstStart from "./FirstStart.svelte";
import Inventory from "./Inventory.svelte";
import Incidents from "./Incidents.svelte";
import Overview from "./Overview.svelte";
import App from "../App.svelte";
import { setLang, watch } from "../lib/ui.svelte";

async function ready() {
  const b = mockBackend();
  await b.createHub("North", "hall", "kestrel", "a good passphrase");
  await b.add("place", { name: "North hall" });
  // As App does: hub events make the screens reload.
  watch(b);
  return b;
}

describe("first start", () => {
  it("refuses two different passphrases, then creates the hub", async () => {
    const b = mockBackend();
    let done = false;
    render(FirstStart, { backend: b, exists: false, onready: () => (done = true) });
    await fireEvent.input(screen.getByLabelText("Hub name"), { target: { value: "North" } });
    await fireEvent.input(screen.getByLabelText(/Your handle/), { target: { value: "kestrel" } });
    await fireEvent.input(screen.getByLabelText(/Store passphrase/), { target: { value: "correct horse" } });
    await fireEvent.input(screen.getByLabelText("Passphrase again"), { target: { value: "wrong horse" } });
    await fireEvent.click(screen.getByRole("button", { name: "Create the hub" }));
    expect(await screen.findByRole("alert")).toHaveProperty("textContent", expect.stringContaining("differ"));
    expect(done).toBe(false);
    await fireEvent.input(screen.getByLabelText("Passphrase again"), { target: { value: "correct horse" } });
    await fireEvent.click(screen.getByRole("button", { name: "Create the hub" }));
    await waitFor(() => expect(done).toBe(true));
    expect((await b.status()).unlocked).toBe(true);
  });
});

describe("inventory", () => {
  it("adds an item, receives and issues stock, and shows the level; bad input names the field", async () => {
    const b = await ready();
    render(Inventory, { backend: b });
    const newItem = await screen.findByRole("form", { name: "New item" });
    await waitFor(() => within(newItem).getByLabelText("name"));
    await fireEvent.click(within(newItem).getByRole("button", { name: "Save" }));
    expect(await within(newItem).findByRole("alert")).toHaveProperty("textContent", expect.stringContaining("name: is required"));
    await fireEvent.input(within(newItem).getByLabelText("name"), { target: { value: "Water" } });
    await fireEvent.input(within(newItem).getByLabelText("unit"), { target: { value: "bottle" } });
    await fireEvent.click(within(newItem).getByRole("button", { name: "Save" }));
    const move = await screen.findByRole("form", { name: "Stock movement" });
    await waitFor(() => expect(within(move).getByLabelText("place").querySelectorAll("option").length).toBeGreaterThan(1));
    const place = b.records.find((r) => r.kind === "place")!.id;
    await fireEvent.change(within(move).getByLabelText("place"), { target: { value: place } });
    await fireEvent.input(within(move).getByLabelText("quantity"), { target: { value: "10" } });
    await fireEvent.click(within(move).getByRole("button", { name: "Save" }));
    const item = b.records.find((r) => r.kind === "item")!.id;
    await waitFor(() => expect(document.querySelector(`tr[data-id="${item}"] td.num`)?.getAttribute("data-level")).toBe("10"));
    await fireEvent.change(within(move).getByLabelText("type"), { target: { value: "issue" } });
    await fireEvent.change(within(move).getByLabelText("place"), { target: { value: place } });
    await fireEvent.input(within(move).getByLabelText("quantity"), { target: { value: "4" } });
    await fireEvent.click(within(move).getByRole("button", { name: "Save" }));
    await waitFor(() => expect(document.querySelector(`tr[data-id="${item}"] td.num`)?.getAttribute("data-level")).toBe("6"));
  });
});

describe("stock movements", () => {
  it("ask for a destination only for a transfer, and keep the place for the next movement", async () => {
    const b = await ready();
    const hall = b.records.find((r) => r.kind === "place")!.id;
    await b.add("place", { name: "Van" });
    const item = (await b.add("item", { name: "Water", unit: "bottle" })).id;
    render(Inventory, { backend: b });
    await fireEvent.click(await screen.findByRole("button", { name: "Details: Water" }));
    const move = await screen.findByRole("form", { name: "Stock movement" });
    await waitFor(() => expect(within(move).getByLabelText("place").querySelectorAll("option").length).toBeGreaterThan(2));
    expect(within(move).queryByLabelText("to place")).toBeNull();
    await fireEvent.change(within(move).getByLabelText("type"), { target: { value: "transfer" } });
    expect(within(move).getByLabelText("to place")).toBeTruthy();
    await fireEvent.change(within(move).getByLabelText("type"), { target: { value: "receive" } });
    expect(within(move).queryByLabelText("to place")).toBeNull();
    await fireEvent.change(within(move).getByLabelText("place"), { target: { value: hall } });
    await fireEvent.input(within(move).getByLabelText("quantity"), { target: { value: "3" } });
    await fireEvent.click(within(move).getByRole("button", { name: "Save" }));
    await waitFor(() => expect(b.records.filter((r) => r.kind === "movement" && r.item === item).length).toBe(1));
    await waitFor(() => expect((within(move).getByLabelText("place") as HTMLSelectElement).value).toBe(hall));
  });
});

describe("incidents", () => {
  it("prefills the time and the place, so a report needs only what happened", async () => {
    const b = await ready();
    render(Incidents, { backend: b });
    const form = await screen.findByRole("form", { name: "Log an incident" });
    await waitFor(() => expect((within(form).getByLabelText("place") as HTMLSelectElement).value).not.toBe(""));
    expect((within(form).getByLabelText("occurred") as HTMLInputElement).value).not.toBe("");
    await fireEvent.input(within(form).getByLabelText("description"), { target: { value: "Medic called at gate 2" } });
    await fireEvent.click(within(form).getByRole("button", { name: "Save" }));
    await waitFor(() => expect(screen.getAllByText("Medic called at gate 2").length).toBeGreaterThan(0));
  });
});

describe("overview", () => {
  it("shows a new hub its first steps until it has places and items", async () => {
    const b = mockBackend();
    await b.createHub("North", "hall", "kestrel", "a good passphrase");
    watch(b);
    render(Overview, { backend: b });
    expect(await screen.findByRole("heading", { name: "First steps" })).toBeTruthy();
    await b.add("place", { name: "Hall" });
    await b.add("item", { name: "Water", unit: "bottle" });
    await waitFor(() => expect(screen.queryByRole("heading", { name: "First steps" })).toBeNull());
  });

  it("opens the record an item names: a shortage opens the item in the inventory", async () => {
    const b = await ready();
    await b.add("item", { name: "Insulin pens", unit: "pen", reorder_level: 5 });
    render(App, { backend: b });
    await fireEvent.click(await screen.findByRole("button", { name: "Insulin pens" }));
    expect(await screen.findByRole("heading", { name: "Insulin pens" })).toBeTruthy();
    expect(document.querySelector("nav button[aria-current=page]")?.textContent).toContain("Inventory");
  });
});

describe("languages", () => {
  it("switch at runtime, Arabic right to left", async () => {
    const b = await ready();
    render(App, { backend: b });
    await screen.findByRole("button", { name: "Settings" });
    setLang("ar");
    expect(await screen.findByRole("button", { name: "الإعدادات" })).toBeTruthy();
    expect(document.documentElement.dir).toBe("rtl");
    setLang("en");
    expect(document.documentElement.dir).toBe("ltr");
  });
});

describe("ledger", () => {
  it("shows what each waiting expense lacks, and approving takes it off the queue", async () => {
    const b = await ready();
    const e = await b.add("expense", { payee: "Corner bakery", fund: "general", currency: "EUR", amount_minor: 4500 });
    const { default: Ledger } = await import("./Ledger.svelte");
    render(Ledger, { backend: b });
    const row = await waitFor(() => {
      const r = document.querySelector(`section[aria-labelledby=le-un] tr[data-id="${e.id}"]`);
      if (!r) throw new Error("no row yet");
      return r as HTMLElement;
    });
    expect(row.textContent).toContain("no purchase policy in force");
    expect(await screen.findByText("You approve as kestrel.")).toBeTruthy();
    expect(screen.queryByRole("textbox", { name: /Approver/ })).toBeNull();
    await fireEvent.click(within(row).getByRole("button", { name: /Approve/ }));
    await waitFor(() => expect(document.querySelector(`section[aria-labelledby=le-un] tr[data-id="${e.id}"]`)).toBeNull());
    expect(b.records.find((r) => r.kind === "approval")).toMatchObject({ expense: e.id, approver: "kestrel", decision: "approve" });
  });
});

describe("requests", () => {
  it("suggests in words, allocates, and a delivery issues the stock and fulfils the request", async () => {
    const b = await ready();
    const hall = b.records.find((r) => r.kind === "place")!.id;
    const blanket = (await b.add("item", { name: "Thermal blanket", unit: "piece", category: "shelter" })).id;
    await b.add("movement", { type: "receive", item: blanket, place: hall, quantity: 10 });
    const req = (await b.add("request", { description: "Blankets for the shelter", category: "shelter", quantity: 6 })).id;
    const { default: Requests } = await import("./Requests.svelte");
    render(Requests, { backend: b });
    const li = await waitFor(() => {
      const e = document.querySelector(`li[data-request="${req}"]`);
      if (!e) throw new Error("no suggestion yet");
      return e as HTMLElement;
    });
    expect(li.textContent).toContain("Blankets for the shelter ← Thermal blanket at North hall: covers 6 of 6");
    expect(li.textContent).toContain("same category");
    await fireEvent.click(within(li).getByRole("button", { name: "Allocate" }));
    await waitFor(() => expect(document.querySelector("[data-status=matched]")?.textContent).toContain("Blankets for the shelter"));
    const alloc = await screen.findByRole("button", { name: "Delivered" });
    await fireEvent.click(alloc);
    await waitFor(() => expect(document.querySelector("[data-status=fulfilled]")?.textContent).toContain("Blankets for the shelter"));
    expect((await b.levels([blanket]))[blanket]).toBe(4);
  });
});

describe("allocating by hand", () => {
  it("promises stock of an item at a place to a request; a quantity of none is refused", async () => {
    const b = await ready();
    const hall = b.records.find((r) => r.kind === "place")!.id;
    const soap = (await b.add("item", { name: "Soap", unit: "bar" })).id;
    const req = (await b.add("request", { description: "Soap for the showers", item: soap, quantity: 4 })).id;
    const { default: Requests } = await import("./Requests.svelte");
    render(Requests, { backend: b });
    const form = await screen.findByRole("form", { name: "Allocate by hand" });
    await waitFor(() => expect(within(form).getByLabelText("Request").querySelectorAll("option").length).toBe(2));
    await fireEvent.change(within(form).getByLabelText("Request"), { target: { value: req } });
    await fireEvent.change(within(form).getByLabelText("Item"), { target: { value: soap } });
    await fireEvent.change(within(form).getByLabelText("Place"), { target: { value: hall } });
    await fireEvent.click(within(form).getByRole("button", { name: "Allocate" }));
    expect((await within(form).findByRole("alert")).textContent).toContain("quantity");
    expect(b.records.filter((r) => r.kind === "allocation")).toEqual([]);
    await fireEvent.input(within(form).getByLabelText("Quantity"), { target: { value: "4" } });
    await fireEvent.click(within(form).getByRole("button", { name: "Allocate" }));
    await waitFor(() => expect(b.records.filter((r) => r.kind === "allocation").length).toBe(1));
    expect(b.records.find((r) => r.kind === "allocation")).toMatchObject({ request: req, item: soap, place: hall, quantity: 4 });
  });
});

describe("joining by invite", () => {
  it("shows the confirmation code to read aloud, and a bad code is refused with the reason", async () => {
    const b = mockBackend();
    watch(b);
    let done = false;
    render(FirstStart, { backend: b, exists: false, onready: () => (done = true) });
    await fireEvent.click(screen.getByLabelText("Join a coalition"));
    const fill = async (label: string | RegExp, value: string) =>
      fireEvent.input(screen.getByLabelText(label), { target: { value } });
    await fill("Invite code", "not a code!");
    await fill("Hub name", "South");
    await fill(/Your handle/, "rook");
    await fill(/Store passphrase/, "correct horse");
    await fill("Passphrase again", "correct horse");
    await fireEvent.click(screen.getByRole("button", { name: "Join" }));
    expect((await screen.findByRole("alert")).textContent).toContain("invite code");
    expect(done).toBe(false);
    await fill("Invite code", "abcde-fghij-klmno-pqrst-uvwxy");
    await fireEvent.click(screen.getByRole("button", { name: "Join" }));
    await waitFor(() => expect(done).toBe(true));
    expect(screen.getByRole("status").textContent).toContain("4711-0815");
  });
});

describe("roster", () => {
  it("checks a volunteer in and out, and the ICS-211 sheet lists the check-in", async () => {
    const b = await ready();
    const v = await b.add("volunteer", { handle: "swift-otter" });
    await b.add("check_in", { volunteer: v.id, checked_in: "2026-11-26T08:00:00Z" });
    const { default: Roster } = await import("./Roster.svelte");
    render(Roster, { backend: b });
    const onSite = await screen.findByRole("button", { name: "Check out: swift-otter" });
    expect(document.querySelector(".print-only.ics211")?.textContent).toContain("swift-otter");
    await fireEvent.click(onSite);
    await waitFor(() => expect(screen.queryByRole("button", { name: "Check out: swift-otter" })).toBeNull());
    // Checked out by an amendment: the check-in itself is never edited.
    const [ci] = await b.list("check_in", 10, 0);
    expect([!!ci.checked_out, ci.amended]).toEqual([true, true]);
    expect(b.records.find((r) => r.kind === "check_in")?.checked_out).toBeNull();
    expect(document.querySelector(".print-only.ics211")?.textContent).toContain("2026-11-26 08:00");
  });
});

describe("saving a PDF", () => {
  it("saves the ICS-211 sheet on the paper chosen in Settings, showing only that sheet meanwhile", async () => {
    const b = await ready();
    const calls: { sheet: string; paper: string; view?: string }[] = [];
    const save = b.savePdf.bind(b);
    b.savePdf = async (sheet, paper) => {
      calls.push({ sheet, paper, view: document.body.dataset.print });
      return save(sheet, paper);
    };
    const { default: Settings } = await import("./Settings.svelte");
    const settings = render(Settings, { backend: b });
    await fireEvent.click(screen.getByLabelText("Letter"));
    settings.unmount();
    const { default: Roster } = await import("./Roster.svelte");
    render(Roster, { backend: b });
    await screen.findAllByRole("button", { name: "Save PDF (Letter)" });
    const bar = document.querySelector("[data-sheet=ics-211]") as HTMLElement;
    await fireEvent.click(within(bar).getByRole("button", { name: "Save PDF (Letter)" }));
    expect(await screen.findByText(/Saved: \/pdf\/ics-211-letter\.pdf/)).toBeTruthy();
    expect(calls).toEqual([{ sheet: "ics-211", paper: "letter", view: "ics211" }]);
    expect(document.body.dataset.print).toBeUndefined();
    expect(document.getElementById("page-size")?.textContent).toContain("size: letter");
  });
});

describe("bundles", () => {
  it("exports to the file chosen in the system's chooser, and a cancel does nothing", async () => {
    const b = await ready();
    const exported: string[] = [];
    b.exportBundle = async (path) => {
      exported.push(path);
      return { bytes: 2048, documents: 3 } as never;
    };
    const { default: Mesh } = await import("./Mesh.svelte");
    render(Mesh, { backend: b });
    b.chosenFile = null;
    await fireEvent.click(await screen.findByRole("button", { name: "Export to a file…" }));
    expect(exported).toEqual([]);
    b.chosenFile = "/media/stick/north.bundle";
    await fireEvent.click(screen.getByRole("button", { name: "Export to a file…" }));
    await waitFor(() => expect(exported).toEqual(["/media/stick/north.bundle"]));
    expect((screen.getByLabelText("Bundle file path") as HTMLInputElement).value).toBe("/media/stick/north.bundle");
  });

  it("says why when the chooser cannot open, and imports nothing", async () => {
    const b = await ready();
    const imported: string[] = [];
    b.importBundle = async (path) => {
      imported.push(path);
      return {} as never;
    };
    b.chooseFile = async () => {
      throw { code: "unsupported", message: "the file chooser is built for Linux only: type the path" };
    };
    const { default: Mesh } = await import("./Mesh.svelte");
    render(Mesh, { backend: b });
    await fireEvent.click(await screen.findByRole("button", { name: "Import from a file…" }));
    expect((await screen.findByRole("alert")).textContent).toContain("type the path");
    expect(imported).toEqual([]);
  });
});

describe("people", () => {
  it("makes a key, an admin adds it and gives a role; a wrong PIN is said; a refused entry names its hub", async () => {
    const b = await ready();
    const authority = b.authority.bind(b);
    b.authority = async () => ({
      ...(await authority()),
      refused: [{ at: "2026-11-26T08:00:00Z", source: "hub ab12-cd34", reason: "rook is not an admin of the coalition" }],
    });
    b.records.push({
      id: "01policy", kind: "policy", created_at: "2026-11-26T07:00:00Z", created_hub: "h", created_by: "kestrel",
      currency: "EUR", limits: [{ role: "treasurer", max_minor: 50000 }], threshold_minor: 20000, approvals_above_threshold: 2,
    });
    const { default: People } = await import("./People.svelte");
    render(People, { backend: b });
    expect((await screen.findByText("You act as kestrel")).closest("#pe-acting")?.textContent).toContain("Key fingerprint:");
    // The purchase policy in force, and who set it.
    await waitFor(() => expect(document.getElementById("pe-policies")?.textContent).toContain("treasurer: up to 500.00 EUR; above 200.00 EUR, 2 approvals"));
    expect(document.getElementById("pe-policies")?.textContent).toContain("In force");
    expect(screen.getByText(/Refused from hub ab12-cd34 \(.+\): rook is not an admin of the coalition/)).toBeTruthy();
    // Someone new makes their key here; the screen shows it to give to an admin.
    const make = screen.getByRole("form", { name: "Make my key" });
    await fireEvent.input(within(make).getByLabelText(/Your handle/), { target: { value: "owl" } });
    await fireEvent.input(within(make).getByLabelText(/PIN/), { target: { value: "4321" } });
    await fireEvent.click(within(make).getByRole("button", { name: "Make my key" }));
    const key = (await waitFor(() => document.getElementById("pe-made-key")!)).textContent!.trim();
    expect(key).toMatch(/^[0-9a-f]{64}$/);
    // kestrel, the founding admin, adds owl by that key and gives them a role.
    const add = screen.getByRole("form", { name: "Add a person" });
    await fireEvent.input(within(add).getByLabelText("Their key"), { target: { value: key } });
    await fireEvent.input(within(add).getByLabelText("Their handle"), { target: { value: "owl" } });
    await fireEvent.click(within(add).getByRole("button", { name: "Add a person" }));
    expect(await screen.findByText("✓ owl added.")).toBeTruthy();
    const owlRow = () => document.querySelector(`#pe-table tr[data-key="${key}"]`) as HTMLElement | null;
    await waitFor(() => expect(owlRow()?.textContent).toContain("kestrel"));
    await fireEvent.change(screen.getByLabelText("Person", { selector: "#pe-role-who" }), { target: { value: key } });
    await fireEvent.input(screen.getByLabelText(/^Role/), { target: { value: "treasurer" } });
    await fireEvent.click(screen.getByRole("button", { name: "Give the role" }));
    await waitFor(() => expect(owlRow()?.querySelector("[data-col=roles]")?.textContent).toBe("treasurer"));
    expect(owlRow()?.querySelector("[data-col=standing]")?.textContent).toBe("member");
    // owl chooses themselves: the PIN field appears; a wrong PIN is said, and kestrel still acts.
    expect(screen.queryByLabelText("PIN")).toBeNull();
    await fireEvent.change(screen.getByLabelText("Who you are"), { target: { value: key } });
    await fireEvent.input(await screen.findByLabelText("PIN"), { target: { value: "0000" } });
    await fireEvent.click(screen.getByRole("button", { name: "Unlock" }));
    expect(await screen.findByText("That PIN does not unlock owl's key.")).toBeTruthy();
    expect((await b.authority()).acting?.handle).toBe("kestrel");
    await fireEvent.input(screen.getByLabelText("PIN"), { target: { value: "4321" } });
    await fireEvent.click(screen.getByRole("button", { name: "Unlock" }));
    expect(await screen.findByText("You act as owl")).toBeTruthy();
    // A plain member sees no admin forms.
    await waitFor(() => expect(screen.queryByRole("form", { name: "Add a person" })).toBeNull());
    expect(screen.getByText("Only an admin adds people, gives roles and removes people.")).toBeTruthy();
  });

  it("with no admin left, the screen says so and the unlocked person votes one in", async () => {
    const b = await ready();
    const owl = await b.makePerson("owl", null);
    await b.addPerson(owl.key, "owl", false);
    // As the hub resolves it after two admins removed each other (the mock cannot get there).
    const authority = b.authority.bind(b);
    b.authority = async () => {
      const a = await authority();
      return { ...a, people: a.people.map((p) => ({ ...p, admin: false })), votes: [{ target: "owl", voters: ["kestrel"] }], votes_needed: 2 };
    };
    const votes: string[] = [];
    b.voteAdmin = async (who) => (votes.push(who), false);
    const { default: People } = await import("./People.svelte");
    render(People, { backend: b });
    expect(await screen.findByText("No admin is left")).toBeTruthy();
    expect(screen.getByText(/2 of the people, voting for the same person, make them an admin/)).toBeTruthy();
    expect(screen.getByText("Votes for owl: kestrel")).toBeTruthy();
    expect(screen.queryByRole("form", { name: "Add a person" })).toBeNull();
    await fireEvent.change(screen.getByLabelText("Person", { selector: "#pe-vote-who" }), { target: { value: owl.key } });
    await fireEvent.click(screen.getByRole("button", { name: "Vote for them as admin" }));
    expect(await screen.findByText("✓ Voted: it takes effect once a majority of the people have voted for them.")).toBeTruthy();
    expect(votes).toEqual([owl.key]);
  });

  it("a hub left out of a turnover of the coalition secret says so among what needs attention", async () => {
    const b = await ready();
    const real = b.authority.bind(b);
    const told = "the turnover of the coalition secret in entry 1a2b by mole: it sealed the new secret for this hub in no slot";
    b.authority = async () => ({ ...(await real()), stranded: told });
    const { default: People } = await import("./People.svelte");
    render(People, { backend: b });
    const item = await screen.findByText(`Left out of ${told}.`);
    expect(item.closest("#pe-alert-list")).toBeTruthy();
    expect(item.getAttribute("data-alert")).toBe("stranded");
  });

  it("a key made for working at another hub proves itself there and is added here with its proof", async () => {
    const b = await ready();
    const kestrel = (await b.authority()).acting!;
    const laptop = await b.makePerson("kestrel-2", null);
    await b.unlockPerson("kestrel-2", null);
    const { default: People } = await import("./People.svelte");
    render(People, { backend: b });
    // Unlocked as the new key, which signs for no one yet: the screen offers the proof.
    const prove = await screen.findByRole("form", { name: "Prove this key is yours" });
    await fireEvent.input(within(prove).getByLabelText(/Your first key/), { target: { value: kestrel.key } });
    await fireEvent.click(within(prove).getByRole("button", { name: "Prove this key is yours" }));
    const proof = (await waitFor(() => document.getElementById("pe-proved-proof")!)).textContent!.trim();
    expect(proof).toMatch(/^[0-9a-f]{128}$/);
    expect(document.getElementById("pe-proved-key")?.textContent?.trim()).toBe(laptop.key);
    // Kestrel, unlocked, adds it with the proof; a wrong proof is said and adds nothing.
    await fireEvent.change(screen.getByLabelText("Who you are"), { target: { value: kestrel.key } });
    await fireEvent.click(screen.getByRole("button", { name: "Unlock" }));
    const add = await screen.findByRole("form", { name: "Add a key of yours" });
    await fireEvent.input(within(add).getByLabelText(/Your key made at the other hub/), { target: { value: laptop.key } });
    await fireEvent.input(within(add).getByLabelText("Its proof"), { target: { value: "ab".repeat(64) } });
    await fireEvent.click(within(add).getByRole("button", { name: "Add a key of yours" }));
    expect((await screen.findByRole("alert")).textContent).toContain("did not sign for kestrel");
    await fireEvent.input(within(add).getByLabelText("Its proof"), { target: { value: proof } });
    await fireEvent.click(within(add).getByRole("button", { name: "Add a key of yours" }));
    expect(await screen.findByText("✓ That key signs for you now, at every hub once they have this entry.")).toBeTruthy();
    expect((await b.authority()).people.find((p) => p.handle === "kestrel")?.keys).toBe(2);
  });

  it("making an admin and removing one wait for the other admins, and their signature completes each", async () => {
    const b = await ready();
    const owl = await b.makePerson("owl", null);
    const wren = await b.makePerson("wren", null);
    await b.addPerson(owl.key, "owl", true);
    await b.addPerson(wren.key, "wren", true);
    const { default: People } = await import("./People.svelte");
    render(People, { backend: b });
    await screen.findByText("You act as kestrel");
    // With two admins, making wren a third needs owl too.
    expect(await screen.findByText("Making wren an admin, signed by kestrel")).toBeTruthy();
    expect(screen.queryByRole("button", { name: /^Sign:/ })).toBeNull();
    await fireEvent.change(screen.getByLabelText("Who you are"), { target: { value: owl.key } });
    await fireEvent.click(screen.getByRole("button", { name: "Unlock" }));
    await fireEvent.click(await screen.findByRole("button", { name: "Sign: Making wren an admin, signed by kestrel" }));
    expect(await screen.findByText("✓ Signed: it has taken effect.")).toBeTruthy();
    await fireEvent.change(screen.getByLabelText("Who you are"), { target: { value: (await b.authority()).people.find((p) => p.handle === "kestrel")!.key } });
    await fireEvent.click(screen.getByRole("button", { name: "Unlock" }));
    await screen.findByText("You act as kestrel");
    await fireEvent.change(screen.getByLabelText("Person", { selector: "#pe-standing-who" }), { target: { value: wren.key } });
    await fireEvent.click(screen.getByRole("button", { name: "Remove" }));
    expect(await screen.findByText("✓ Signed: it takes effect once a majority of the other admins have signed.")).toBeTruthy();
    expect(await screen.findByText("Removal of wren, signed by kestrel")).toBeTruthy();
    expect(screen.queryByRole("button", { name: /^Sign:/ })).toBeNull();
    await fireEvent.change(screen.getByLabelText("Who you are"), { target: { value: owl.key } });
    await fireEvent.click(screen.getByRole("button", { name: "Unlock" }));
    await fireEvent.click(await screen.findByRole("button", { name: "Sign: Removal of wren, signed by kestrel" }));
    expect(await screen.findByText("✓ Signed: it has taken effect.")).toBeTruthy();
    await waitFor(() => expect(document.querySelector(`#pe-table tr[data-key="${wren.key}"]`)).toBeNull());
  });
});

describe("purchase policy", () => {
  it("an admin sets it in the currency's units; a bad amount is named and nothing is set", async () => {
    const b = await ready();
    const { default: People } = await import("./People.svelte");
    render(People, { backend: b });
    const form = await screen.findByRole("form", { name: "Set the purchase policy" });
    await waitFor(() => expect((within(form).getByLabelText("Currency") as HTMLSelectElement).options.length).toBeGreaterThan(1));
    await fireEvent.input(within(form).getByLabelText("May approve up to"), { target: { value: "500.555" } });
    await fireEvent.click(within(form).getByRole("button", { name: "Set the policy" }));
    expect((await screen.findByRole("alert")).textContent).toContain("at most 2 digits after the point");
    expect((await b.authority()).policies).toEqual([]);
    await fireEvent.input(within(form).getByLabelText("May approve up to"), { target: { value: "500" } });
    await fireEvent.input(within(form).getByLabelText("Above this amount…"), { target: { value: "200.00" } });
    await fireEvent.click(within(form).getByRole("button", { name: "Set the policy" }));
    expect(await screen.findByText("✓ Purchase policy set.")).toBeTruthy();
    await waitFor(() =>
      expect(document.getElementById("pe-policies")?.textContent).toContain("treasurer: up to 500.00 EUR; above 200.00 EUR, 2 approvals"),
    );
  });
});

describe("contacts", () => {
  it("saves a contact kept here by consent, shows it only for a reason, logs the read, and erases it", async () => {
    const b = await ready();
    const fox = await b.add("volunteer", { handle: "quiet-fox", consent: { contact: true, photo: false, share: false } });
    const { default: Contacts } = await import("./Contacts.svelte");
    render(Contacts, { backend: b });
    await fireEvent.click(await screen.findByRole("button", { name: "Open: quiet-fox" }));
    await fireEvent.input(screen.getByLabelText("Name"), { target: { value: "Amal Haddad" } });
    await fireEvent.input(screen.getByLabelText("Phone"), { target: { value: "+34 600" } });
    await fireEvent.click(screen.getByRole("button", { name: "Save contact" }));
    expect(await screen.findByText("Saved, kept at this hub only.")).toBeTruthy();
    expect(document.querySelector(`tr[data-record="${fox.id}"] .held`)?.textContent).toBe("Kept at this hub only");
    // Nothing is shown without a reason; with one, the read is logged under the person's name.
    expect(document.getElementById("co-shown")).toBeNull();
    await fireEvent.input(screen.getByLabelText("Why you need it"), { target: { value: "no" } });
    await fireEvent.click(screen.getByRole("button", { name: "View contact" }));
    expect((await screen.findByRole("alert")).textContent).toContain("reason");
    expect(await b.contactReads(5)).toEqual([]);
    await fireEvent.input(screen.getByLabelText("Why you need it"), { target: { value: "night shift call" } });
    await fireEvent.click(screen.getByRole("button", { name: "View contact" }));
    await waitFor(() => expect(document.getElementById("co-shown")?.textContent).toContain("Amal Haddad"));
    await waitFor(() => expect(document.getElementById("co-read-log")?.textContent).toContain("kestrel: quiet-fox — “night shift call”"));
    // Shown, the form holds the contact: a field cleared there is removed, the rest kept.
    expect((screen.getByLabelText("Phone") as HTMLInputElement).value).toBe("+34 600");
    await fireEvent.input(screen.getByLabelText("Phone"), { target: { value: "" } });
    await fireEvent.input(screen.getByLabelText("Access needs"), { target: { value: "step-free access" } });
    await fireEvent.click(screen.getByRole("button", { name: "Save contact" }));
    expect(await screen.findByText("Saved, kept at this hub only.")).toBeTruthy();
    expect(await b.readContact(fox.id, "check the form")).toEqual({ name: "Amal Haddad", access_needs: "step-free access" });
    // Not shown, a blank field keeps what the contact holds: adding a number keeps the rest.
    expect((screen.getByLabelText("Name") as HTMLInputElement).value).toBe("");
    await fireEvent.input(screen.getByLabelText("Phone"), { target: { value: "+34 611" } });
    await fireEvent.click(screen.getByRole("button", { name: "Save contact" }));
    await waitFor(async () =>
      expect(await b.readContact(fox.id, "check the form")).toEqual({ name: "Amal Haddad", access_needs: "step-free access", phone: "+34 611" }),
    );
    // Erased by another face (the command, or a peer's erasure arriving) while shown: the
    // contact leaves the screen and the form, whose save would otherwise bring it back.
    await fireEvent.input(screen.getByLabelText("Why you need it"), { target: { value: "night shift call" } });
    await fireEvent.click(screen.getByRole("button", { name: "View contact" }));
    await waitFor(() => expect((screen.getByLabelText("Name") as HTMLInputElement).value).toBe("Amal Haddad"));
    await b.setContact(fox.id, { name: "Amal H." });
    await waitFor(() => expect(document.getElementById("co-shown")).toBeNull());
    expect((screen.getByLabelText("Name") as HTMLInputElement).value).toBe("");
    // Erasing asks once more, then destroys it.
    await fireEvent.click(screen.getByRole("button", { name: "Erase contact" }));
    expect(screen.getByText(/Erase quiet-fox's contact on every hub\?/)).toBeTruthy();
    await fireEvent.click(document.getElementById("co-erase-yes")!);
    await waitFor(() => expect(document.querySelector(`tr[data-record="${fox.id}"] .held`)?.textContent).toMatch(/^Erased/));
    expect(document.getElementById("co-shown")).toBeNull();
    expect((screen.getByLabelText("Name") as HTMLInputElement).value, "an erased contact leaves the form").toBe("");
  });
});

describe("accountability", () => {
  it("adds a dated step that moves a grievance, and ticks an action off with its date", async () => {
    const b = await ready();
    const g = await b.add("grievance", { summary: "Rota unfair to the night shift" });
    const n = await b.add("after_action", { title: "Night 1", action_items: [{ action: "More water", owner: "owl", due: null, done: false, done_at: null }] });
    const { default: Accountability } = await import("./Accountability.svelte");
    render(Accountability, { backend: b });
    const found = (selector: string) =>
      waitFor(() => {
        const e = document.querySelector(selector);
        if (!e) throw new Error(`no ${selector} yet`);
        return e as HTMLElement;
      });
    const steps = await found(`details[data-grievance="${g.id}"]`);
    await fireEvent.input(within(steps).getByLabelText("What was done"), { target: { value: "Spoke with both sides" } });
    await fireEvent.change(within(steps).getByLabelText("Status"), { target: { value: "investigating" } });
    await fireEvent.click(within(steps).getByRole("button", { name: "Save the step" }));
    await waitFor(() => expect(document.querySelector(`details[data-grievance="${g.id}"] ol`)?.textContent).toMatch(/kestrel · investigating: Spoke with both sides/));
    expect(document.querySelector(`details[data-grievance="${g.id}"] summary`)?.textContent).toBe("Steps (1)");
    const items = () => document.querySelector(`ul[data-note="${n.id}"]`) as HTMLElement;
    await found(`ul[data-note="${n.id}"]`);
    await fireEvent.click(within(items()).getByLabelText("More water (owl)"));
    await waitFor(() => expect(items().textContent).toContain("✓"));
    const add = screen.getByRole("form", { name: "Add the action: Night 1" });
    await fireEvent.input(within(add).getByPlaceholderText("A new action"), { target: { value: "A second radio" } });
    await fireEvent.click(within(add).getByRole("button", { name: "Add the action" }));
    await waitFor(() => expect(items().textContent).toContain("A second radio"));
    const [water, radio] = (await b.list("after_action", 10, 0))[0].action_items;
    expect([water.done, !!water.done_at, radio.done]).toEqual([true, true, false]);
  });
});

describe("mesh", () => {
  it("turns the coalition secret over only once confirmed, and says for how many hubs", async () => {
    const b = await ready();
    let rotations = 0;
    const rotate = b.rotateSecret.bind(b);
    b.rotateSecret = async () => (rotations++, rotate());
    const { default: Mesh } = await import("./Mesh.svelte");
    render(Mesh, { backend: b });
    await fireEvent.click(await screen.findByRole("button", { name: "Turn the coalition secret over" }));
    expect(screen.getByRole("alert").textContent).toMatch(/Every hub must run this version first/);
    await fireEvent.click(screen.getByRole("button", { name: "Cancel" }));
    expect(rotations).toBe(0);
    await fireEvent.click(screen.getByRole("button", { name: "Turn the coalition secret over" }));
    await fireEvent.click(screen.getByRole("button", { name: "Turn it over now" }));
    await waitFor(() => expect(screen.getByRole("status").textContent).toBe("✓ Turned the secret over for 3 member hubs."));
    expect(rotations).toBe(1);
  });

  it("shows a hub that connects as it connects, and drops a revoked one, with no timer", async () => {
    const b = await ready();
    let asked = 0;
    const peers = b.peers.bind(b);
    b.peers = async () => (asked++, peers());
    // Time is the test's: it runs on as usual for the screen and the test's waits, and a minute
    // can pass at once. A screen that polled would ask again in that minute.
    vi.useFakeTimers({
      shouldAdvanceTime: true,
      toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "requestAnimationFrame", "cancelAnimationFrame"],
    });
    try {
      const { default: Mesh } = await import("./Mesh.svelte");
      render(Mesh, { backend: b });
      const list = (await screen.findByRole("heading", { name: "Connected hubs" })).nextElementSibling!;
      await waitFor(() => expect(within(list as HTMLElement).getByText("Nothing here.")).toBeTruthy());
      const before = asked;
      await vi.advanceTimersByTimeAsync(60_000);
      expect(asked, "no question in a minute without a peers event").toBe(before);
      await fireEvent.input(screen.getByLabelText("Address (IP:port)"), { target: { value: "10.0.0.7:7420" } });
      await fireEvent.click(screen.getByRole("button", { name: "Connect" }));
      await waitFor(() => expect(within(list as HTMLElement).getByText(/Peer 1/)).toBeTruthy());
      expect(asked - before, "one peers event, one question").toBe(1);
      // Revoking the member closes its connection: it leaves both lists, and never comes back.
      const members = () => screen.getByRole("heading", { name: "Member hubs" }).nextElementSibling as HTMLElement;
      const member = await waitFor(() => within(members()).getByText("mock-peer-1").closest("li") as HTMLElement);
      await fireEvent.click(within(member).getByRole("button", { name: "Revoke" }));
      await waitFor(() => expect(within(list as HTMLElement).queryByText(/Peer 1/)).toBeNull());
      await waitFor(() => expect(within(members()).queryByText("mock-peer-1")).toBeNull());
      await fireEvent.click(screen.getByRole("button", { name: "Connect" }));
      await waitFor(() => expect(within(list as HTMLElement).getByText(/Peer 2/)).toBeTruthy());
      expect(within(list as HTMLElement).queryByText(/Peer 1/)).toBeNull();
    } finally {
      vi.useRealTimers();
    }
  });
});
