// What every Backend promises the screens, as tests. `contract.test.ts` runs them against the
// mock; the app's contract test (src-tauri/tests/contract.rs) runs the same ones against the
// real hub through the app's own commands. A mock that drifts from the hub fails here.

import { describe, expect, it } from "vitest";
import { errorCode, errorMessage, type Backend, type HubEvent, type HubRecord, type Kind } from "./backend";
import { KIND_FIELDS } from "./hub.gen";

/** Runs `f` and answers the error it threw (fails if it did not). */
async function refusal(f: () => Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await f();
  } catch (e) {
    return { code: errorCode(e), message: errorMessage(e) };
  }
  throw new Error("expected a refusal, but it was accepted");
}

async function hub(fresh: () => Promise<Backend>): Promise<Backend> {
  const b = await fresh();
  await b.createHub("North Hall", "Main square", "kestrel", "a good passphrase");
  return b;
}

const id = (r: HubRecord) => r.id;

export function backendContract(name: string, fresh: () => Promise<Backend>) {
  describe(`the Backend contract (${name})`, () => {
    it("refuses to revoke what is not a hub id, naming it, and changes no member", async () => {
      const b = await hub(fresh);
      const before = (await b.identity()).members;
      const e = await refusal(() => b.revoke("not a hub"));
      expect(e.code).toBe("invalid");
      expect(e.message).toContain('"not a hub" is not a hub id');
      expect((await b.identity()).members).toEqual(before);
    });

    it("turns the coalition secret over for every member hub, changing no member", async () => {
      const b = await hub(fresh);
      const before = (await b.identity()).members;
      expect(await b.rotateSecret()).toBe(before.length);
      expect((await b.identity()).members).toEqual(before);
    });

    it("switches sync over the internet off and on at this hub, and names no relay until an admin does", async () => {
      const b = await hub(fresh);
      expect(await b.internet()).toEqual({ on: true, relays: [], budget: null, used_today: 0 });
      expect(await b.setInternet(false)).toEqual({ on: false, relays: [], budget: null, used_today: 0 });
      expect((await b.internet()).on).toBe(false);
      expect((await b.setInternet(true)).on).toBe(true);
    });

    it("keeps a day's budget for internet sync, refuses a budget of nothing, and lifts it", async () => {
      const b = await hub(fresh);
      expect((await b.setInternetBudget(50_000_000)).budget).toBe(50_000_000);
      expect((await b.internet()).budget).toBe(50_000_000);
      const e = await refusal(() => b.setInternetBudget(0));
      expect(e.code).toBe("malformed");
      expect(e.message).toContain("at least 1 byte");
      expect((await b.internet()).budget).toBe(50_000_000);
      expect((await b.setInternetBudget(null)).budget).toBe(null);
    });

    it("refuses a short passphrase and creates nothing, then founds a hub", async () => {
      const b = await fresh();
      expect((await b.status()).store_exists).toBe(false);
      const e = await refusal(() => b.createHub("North Hall", "", "kestrel", "short"));
      expect(e.code).toBe("invalid");
      expect(e.message).toContain("at least 8 characters");
      expect((await b.status()).store_exists).toBe(false);
      const f = await refusal(() => b.createHub("North Hall", "", "  ", "a good passphrase"));
      expect(f.message).toContain("handle");
      await b.createHub("North Hall", "Main square", "kestrel", "a good passphrase");
      const s = await b.status();
      expect([s.store_exists, s.unlocked]).toEqual([true, true]);
      expect((await b.overview()).hub_name).toBe("North Hall");
    });

    it("adds, lists and shows records; a bad field is named and nothing is added", async () => {
      const b = await hub(fresh);
      const before = (await b.list("item", 50, 0)).length;
      const e = await refusal(() => b.add("item", { name: "", unit: "piece" }));
      expect(e.code).toBe("invalid");
      expect(e.message).toContain("name");
      expect((await b.list("item", 50, 0)).length).toBe(before);
      const water = await b.add("item", { name: "Water", unit: "bottle", category: "water" });
      const listed = await b.list("item", 50, 0);
      const row = listed.find((r) => r.id === water.id)!;
      expect([row.kind, row.name, row.unit, row.amended]).toEqual(["item", "Water", "bottle", false]);
      const v = await b.show(water.id);
      expect(v.record.id).toBe(water.id);
      expect(v.history.length).toBeGreaterThan(0);
      const h = v.history[0];
      expect(typeof h.handle).toBe("string");
      expect(typeof h.change).toBe("string");
      expect(h.at).toMatch(/^\d{4}-\d\d-\d\dT/);
      expect((await refusal(() => b.show("nothing-here"))).code).toBe("not_found");
      const hits = await b.search("water", null, 10);
      expect(hits.map((x) => x.id)).toContain(water.id);
    });

    it("keeps stock as the sum of movements and refuses to issue what is not there", async () => {
      const b = await hub(fresh);
      const place = id(await b.add("place", { name: "Gate 2 tent" }));
      const item = id(await b.add("item", { name: "Water", unit: "bottle" }));
      await b.add("movement", { type: "receive", item, place, quantity: 10 });
      await b.add("movement", { type: "issue", item, place, quantity: 4 });
      expect((await b.levels([item]))[item]).toBe(6);
      const e = await refusal(() => b.add("movement", { type: "issue", item, place, quantity: 100 }));
      expect(e.code).toBe("invalid");
      expect(e.message).toContain("quantity");
      expect((await b.levels([item]))[item]).toBe(6);
      expect(await b.stock(item)).toEqual([{ item, place, quantity: 6 }]);
      // Places: each with what is stored there, by name.
      const van = id(await b.add("place", { name: "Van" }));
      await b.add("movement", { type: "transfer", item, place, to_place: van, quantity: 2 });
      const places = await b.places();
      expect(places.map((p) => [p.place.id, p.items, p.units])).toEqual([
        [place, 1, 4],
        [van, 1, 2],
      ]);
      expect(await b.storedAt(van)).toEqual([{ item, name: "Water", unit: "bottle", quantity: 2 }]);
      expect((await refusal(() => b.storedAt(item))).code).toBe("not_found");
    });

    it("takes a request by category to a suggestion in words, an allocation, a delivery and fulfilment", async () => {
      const b = await hub(fresh);
      const hall = id(await b.add("place", { name: "Hall" }));
      const blanket = id(await b.add("item", { name: "Blanket", unit: "piece", category: "shelter" }));
      await b.add("movement", { type: "receive", item: blanket, place: hall, quantity: 30 });
      const req = id(
        await b.add("request", { description: "Blankets for the shelter", category: "shelter", quantity: 20, place: hall }),
      );
      const [s, ...more] = await b.suggestions(req);
      expect(more).toEqual([]);
      expect(s.source).toEqual({ type: "stock", item: blanket, place: hall });
      expect([s.request, s.quantity, s.needed]).toEqual([req, 20, 20]);
      expect([s.request_label, s.source_label, s.place_label]).toEqual(["Blankets for the shelter", "Blanket", "Hall"]);
      expect(s.reasons).toContainEqual({ type: "same_category" });
      const none = await refusal(() => b.allocate(s.request, s.source, 0));
      expect([none.code, none.message.includes("quantity")]).toEqual(["invalid", true]);
      const alloc = id(await b.allocate(s.request, s.source, s.quantity));
      const status = async () => (await b.list("request", 50, 0)).find((r) => r.id === req)!.status;
      expect(await status()).toBe("matched");
      expect(await b.suggestions(req)).toEqual([]);
      await b.stepAllocation(alloc, "in_transit");
      expect(await status()).toBe("in_transit");
      expect((await b.levels([blanket]))[blanket]).toBe(30);
      await b.stepAllocation(alloc, "delivered");
      expect((await b.levels([blanket]))[blanket]).toBe(10);
      expect(await status()).toBe("fulfilled");
      const e = await refusal(() => b.stepAllocation(alloc, "released"));
      expect(e.code).toBe("invalid");
      expect(e.message).toContain("already delivered");
      await b.requestStatus(req, "cancelled");
      expect(await status()).toBe("cancelled");
      await b.requestStatus(req, "open");
      expect(await status()).toBe("open");
    });

    it("cancels a request with what is promised to it, and refuses what a closed request cannot take", async () => {
      const b = await hub(fresh);
      const hall = id(await b.add("place", { name: "Hall" }));
      const soap = id(await b.add("item", { name: "Soap", unit: "bar", category: "hygiene" }));
      await b.add("movement", { type: "receive", item: soap, place: hall, quantity: 5 });
      const req = id(await b.add("request", { description: "Soap", item: soap, quantity: 3 }));
      const alloc = id(await b.allocate(req, { type: "stock", item: soap, place: hall }, 3));
      await b.requestStatus(req, "cancelled");
      const a = (await b.list("allocation", 50, 0)).find((r) => r.id === alloc)!;
      expect(a.status).toBe("released");
      expect((await refusal(() => b.allocate(req, { type: "stock", item: soap, place: hall }, 1))).message).toContain(
        "cancelled",
      );
      expect((await refusal(() => b.requestStatus(req, "fulfilled"))).code).toBe("invalid");
      // Nor does a plain update move what the loop rules: no stock leaves, no request closes.
      expect((await refusal(() => b.update(req, { status: "fulfilled" }))).message).toContain("status");
      const more = id(await b.add("request", { description: "More soap", item: soap, quantity: 1 }));
      const held = id(await b.allocate(more, { type: "stock", item: soap, place: hall }, 1));
      expect((await refusal(() => b.update(held, { status: "delivered" }))).code).toBe("invalid");
      expect((await refusal(() => b.update(held, { quantity: 5 }))).code).toBe("invalid");
      expect((await b.levels([soap]))[soap]).toBe(5);
      await b.stepAllocation(held, "released");
      await b.requestStatus(req, "open");
      const again = id(await b.allocate(req, { type: "stock", item: soap, place: hall }, 2));
      await b.stepAllocation(again, "delivered");
      await b.stepAllocation(again, "delivered");
      expect((await b.levels([soap]))[soap]).toBe(3);
      const r = (await b.list("request", 50, 0)).find((x) => x.id === req)!;
      expect(r.status).toBe("matched");
    });

    it("withholds a confidential grievance from whoever is not among its readers", async () => {
      const b = await hub(fresh);
      const g = id(
        await b.add("grievance", {
          summary: "Marshal shouted at volunteers",
          details: "names inside",
          confidential: true,
          readers: ["owl"],
        }),
      );
      const row = (await b.list("grievance", 50, 0)).find((r) => r.id === g)!;
      expect([row.summary, row.details, row.readers]).toEqual(["[confidential]", "[confidential]", []]);
      expect(await b.search("marshal", null, 10)).toEqual([]);
      const v = await b.show(g);
      expect(JSON.stringify(v)).not.toContain("shouted");
      expect(v.history).toEqual([]);
      expect((await refusal(() => b.update(g, { readers: ["kestrel"] }))).code).toBe("invalid");
    });

    it("shows an amended incident amended in lists, with the original on demand; never edits it", async () => {
      const b = await hub(fresh);
      const inc = id(
        await b.add("incident", { occurred: "2026-11-25T09:40:00Z", severity: 3, description: "Crush at gate 2" }),
      );
      expect((await refusal(() => b.update(inc, { severity: 4 }))).code).toBe("append_only");
      expect((await refusal(() => b.amend(inc, "severity", 4, ""))).message).toContain("reason");
      await b.amend(inc, "severity", 4, "two people hurt");
      const row = (await b.list("incident", 50, 0)).find((r) => r.id === inc)!;
      expect([row.severity, row.amended]).toEqual([4, true]);
      const v = await b.show(inc);
      expect(v.record.kind === "incident" && v.record.severity).toBe(4);
      expect(v.original?.kind === "incident" && v.original.severity).toBe(3);
      expect(v.amendments.length).toBe(1);
    });

    it("lists a new expense as waiting for approval, with what it lacks", async () => {
      const b = await hub(fresh);
      const exp = id(
        await b.add("expense", {
          date: "2026-11-25",
          amount_minor: 4250,
          currency: "EUR",
          fund: "General",
          payee: "Corner shop",
          purpose: "Water",
        }),
      );
      const l = await b.ledger();
      const w = l.unapproved.find((r) => r.id === exp)!;
      expect(w.approval.state).toBe("unapproved");
      expect(w.approval.state === "unapproved" && w.approval.why.length).toBeGreaterThan(0);
      expect(l.totals.per_fund).toContainEqual({ name: "General", currency: "EUR", minor: 4250, amount: "42.50 EUR" });
    });

    it("a plain member cannot grant roles or add people; the founder can, and the grant shows in the people list", async () => {
      const b = await hub(fresh);
      const start = await b.authority();
      expect(start.acting?.handle).toBe("kestrel");
      expect(start.coalition).toBe("North Hall");
      expect(start.people.map((p) => [p.handle, p.admin, p.roles])).toEqual([["kestrel", true, []]]);
      const owl = await b.makePerson("owl", "owl-pin-1");
      expect([owl.handle, owl.pin, owl.key.length, owl.fingerprint.length > 0]).toEqual(["owl", true, 64, true]);
      expect((await b.peopleHere()).map((p) => [p.handle, p.pin])).toEqual([
        ["kestrel", false],
        ["owl", true],
      ]);
      await b.addPerson(owl.key, "owl", false);
      const wren = await b.makePerson("wren", null);
      expect((await b.unlockPerson("owl", "owl-pin-1")).key).toBe(owl.key);
      expect((await b.authority()).acting?.handle).toBe("owl");
      const add = await refusal(() => b.addPerson(wren.key, "wren", false));
      expect([add.code, add.message.includes("admin")]).toEqual(["not_allowed", true]);
      expect((await refusal(() => b.grant("owl", "treasurer", true))).code).toBe("not_allowed");
      expect((await refusal(() => b.setAdmin("owl", true))).code).toBe("not_allowed");
      const before = (await b.authority()).people;
      expect(before.map((p) => p.handle).sort()).toEqual(["kestrel", "owl"]);
      expect(before.find((p) => p.handle === "owl")!.roles).toEqual([]);
      await b.unlockPerson("kestrel", null);
      await b.grant("owl", "treasurer", true);
      await b.addPerson(wren.key, "wren", false);
      const after = await b.authority();
      const row = (h: string) => after.people.find((p) => p.handle === h)!;
      expect([row("owl").admin, row("owl").roles, row("owl").added_by]).toEqual([false, ["treasurer"], "kestrel"]);
      expect([row("wren").admin, row("wren").key, row("wren").added_by]).toEqual([false, wren.key, "kestrel"]);
      expect(row("wren").since).toMatch(/^\d{4}-\d\d-\d\dT/);
      await b.grant("owl", "treasurer", false);
      expect((await b.authority()).people.find((p) => p.handle === "owl")!.roles).toEqual([]);
    });

    it("a wrong PIN unlocks no one: whoever acted still acts; a PIN is at least 4 characters", async () => {
      const b = await hub(fresh);
      const short = await refusal(() => b.makePerson("jay", "123"));
      expect([short.code, short.message.includes("pin")]).toEqual(["invalid", true]);
      expect((await b.peopleHere()).map((p) => p.handle)).toEqual(["kestrel"]);
      await b.makePerson("owl", "owl-pin-1");
      expect((await refusal(() => b.unlockPerson("owl", "owl-pin-2"))).code).toBe("wrong_pin");
      expect((await refusal(() => b.unlockPerson("owl", null))).code).toBe("wrong_pin");
      expect((await refusal(() => b.unlockPerson("nobody", null))).code).toBe("not_found");
      expect((await b.authority()).acting?.handle).toBe("kestrel");
      await b.lockPerson();
      expect((await b.authority()).acting).toBeNull();
      expect((await refusal(() => b.grant("kestrel", "treasurer", true))).code).toBe("not_allowed");
      expect((await b.unlockPerson("owl", "owl-pin-1")).handle).toBe("owl");
      expect((await b.authority()).acting?.handle).toBe("owl");
    });

    it("making or removing an admin waits for a majority of the admins; the last admin cannot be removed", async () => {
      const b = await hub(fresh);
      const owl = await b.makePerson("owl", null);
      const wren = await b.makePerson("wren", null);
      // The only admin makes the second alone; with two, making a third needs both.
      expect(await b.addPerson(owl.key, "owl", true)).toBe(true);
      expect(await b.addPerson(wren.key, "wren", true)).toBe(false);
      const made = await b.authority();
      expect(made.waiting.map((x) => [x.target, x.change, x.signed])).toEqual([["wren", "promotion", ["kestrel"]]]);
      expect(made.people.map((p) => [p.handle, p.admin]).sort()).toEqual([
        ["kestrel", true],
        ["owl", true],
        ["wren", false],
      ]);
      const again = await refusal(() => b.setAdmin("wren", true));
      expect([again.code, again.message.includes("already waits")]).toEqual(["not_allowed", true]);
      await b.unlockPerson("owl", null);
      expect(await b.endorse("wren")).toBe(true);
      expect((await b.authority()).people.find((p) => p.handle === "wren")?.admin).toBe(true);
      // Three admins: demoting or removing one needs both others. Two changes of wren wait;
      // signing names the one meant, by its entry.
      await b.unlockPerson("kestrel", null);
      expect(await b.setAdmin("wren", false)).toBe(false);
      expect(await b.removePerson("wren")).toBe(false);
      const w = await b.authority();
      expect(w.waiting.map((x) => [x.target, x.change, x.signed]).sort()).toEqual([
        ["wren", "demotion", ["kestrel"]],
        ["wren", "removal", ["kestrel"]],
      ]);
      expect(w.people.map((p) => p.handle)).toContain("wren");
      await b.unlockPerson("owl", null);
      const which = await refusal(() => b.endorse("wren"));
      expect([which.code, which.message.includes("several changes")]).toEqual(["invalid", true]);
      const removal = w.waiting.find((x) => x.change === "removal")!.entry;
      expect(await b.endorse(removal)).toBe(true);
      // Signed again, the entry that took effect is not found: it never stands for a person.
      expect((await refusal(() => b.endorse(removal))).code).toBe("not_found");
      const gone = await b.authority();
      expect([gone.waiting, gone.people.map((p) => p.handle).sort()]).toEqual([[], ["kestrel", "owl"]]);
      // With two admins, the other one is enough.
      expect(await b.setAdmin("kestrel", false)).toBe(true);
      expect((await b.authority()).people.map((p) => [p.handle, p.admin]).sort()).toEqual([
        ["kestrel", false],
        ["owl", true],
      ]);
      const last = await refusal(() => b.removePerson("owl"));
      expect([last.code, last.message.includes("last admin")]).toEqual(["not_allowed", true]);
      // While an admin is left, no one votes an admin in: admins make admins.
      const vote = await refusal(() => b.voteAdmin("kestrel"));
      expect([vote.code, vote.message.includes("has an admin")]).toEqual(["not_allowed", true]);
      expect([(await b.authority()).votes, (await b.authority()).votes_needed]).toEqual([[], 2]);
      expect(await b.removePerson("kestrel")).toBe(true);
      expect((await b.authority()).people.map((p) => p.handle)).toEqual(["owl"]);
    });

    it("a key made at another hub becomes one of a person's keys only with its proof for them", async () => {
      const b = await hub(fresh);
      const kestrel = (await b.authority()).acting!;
      const owl = await b.makePerson("owl", null);
      await b.addPerson(owl.key, "owl", false);
      // The key made "at the other hub" signs for no one; it proves itself for kestrel.
      const laptop = await b.makePerson("kestrel-2", null);
      await b.unlockPerson("kestrel-2", null);
      expect((await b.authority()).acting_as).toBe(null);
      expect((await refusal(() => b.keyProof("not a key"))).code).toBe("invalid");
      const proof = await b.keyProof(kestrel.key);
      const forOwl = await b.keyProof(owl.key);
      expect([proof, forOwl].every((p) => /^[0-9a-f]{128}$/.test(p))).toBe(true);
      // Kestrel adds it: a proof made for someone else, or no proof at all, is refused.
      await b.unlockPerson("kestrel", null);
      const other = await refusal(() => b.addKey(laptop.key, forOwl));
      expect([other.code, other.message.includes("did not sign for")]).toEqual(["not_allowed", true]);
      const junk = await refusal(() => b.addKey(laptop.key, "zz"));
      expect([junk.code, junk.message.includes("proof")]).toEqual(["invalid", true]);
      await b.addKey(laptop.key, proof);
      const two = await b.authority();
      expect(two.people.find((p) => p.handle === "kestrel")?.keys).toBe(2);
      const again = await refusal(() => b.addKey(laptop.key, proof));
      expect([again.code, again.message.includes("never given twice")]).toEqual(["not_allowed", true]);
      // Unlocked, the new key acts as kestrel, an admin.
      await b.unlockPerson("kestrel-2", null);
      expect((await b.authority()).acting_as).toBe(kestrel.key);
      await b.grant("owl", "treasurer", true);
      expect((await b.authority()).people.find((p) => p.handle === "owl")?.roles).toEqual(["treasurer"]);
    });

    it("lets an admin set the purchase policy and no one else, and names what is wrong with one", async () => {
      const b = await hub(fresh);
      const policy = { currency: "EUR", limits: [{ role: "treasurer", max_minor: 50000 }], threshold_minor: 20000, approvals_above_threshold: 2 };
      const none = await refusal(() => b.add("policy", { ...policy, limits: [] }));
      expect([none.code, none.message.includes("limits")]).toEqual(["invalid", true]);
      const money = await refusal(() => b.add("policy", { ...policy, currency: "EURO" }));
      expect([money.code, money.message.includes("currency")]).toEqual(["invalid", true]);
      expect((await b.authority()).policies).toEqual([]);
      await b.add("policy", policy);
      const [p] = (await b.authority()).policies;
      expect([p.currency, p.limits, p.threshold, p.approvals_above_threshold, p.in_force, p.set_by]).toEqual([
        "EUR",
        ["treasurer: up to 500.00 EUR"],
        "200.00 EUR",
        2,
        true,
        "kestrel",
      ]);
      // A plain member cannot set one.
      const owl = await b.makePerson("owl", null);
      await b.addPerson(owl.key, "owl", false);
      await b.unlockPerson("owl", null);
      const e = await refusal(() => b.add("policy", { ...policy, threshold_minor: 0 }));
      expect(e.code).toBe("not_allowed");
      expect((await b.authority()).policies.length).toBe(1);
    });

    it("keeps a grievance's dated steps, ticks actions off with a date, and acknowledges a handoff once", async () => {
      const b = await hub(fresh);
      const g = id(await b.add("grievance", { summary: "Rota unfair", facilitator: "kestrel" }));
      expect((await refusal(() => b.grievanceStep(g, "  ", null))).code).toBe("invalid");
      await b.grievanceStep(g, "Spoke with both sides", "investigating");
      await b.update(g, { status: "resolved", resolution: "Rota redone" });
      // Closing it with no note takes the resolution as the step's note.
      await b.update(g, { resolution: "Rota redone with both shifts" });
      await b.grievanceStep(g, "", "dismissed");
      const got = (await b.list("grievance", 10, 0)).find((r) => r.id === g)!;
      expect([got.status, got.facilitator]).toEqual(["dismissed", "kestrel"]);
      expect(got.steps.map((s) => [s.by, s.note, s.status])).toEqual([
        ["kestrel", "Spoke with both sides", "investigating"],
        ["kestrel", "Rota redone", "resolved"],
        ["kestrel", "Rota redone with both shifts", "dismissed"],
      ]);
      expect(got.steps[0].at).toMatch(/^\d{4}-\d\d-\d\dT/);
      const rewrite = await refusal(() => b.update(g, { steps: [] }));
      expect([rewrite.code, rewrite.message.includes("only ever added")]).toEqual(["invalid", true]);
      // Steps are never written by hand, even at the start; a facilitator is not involved.
      const forged = await refusal(() => b.add("grievance", { summary: "x", steps: got.steps }));
      expect([forged.code, forged.message.includes("steps")]).toEqual(["invalid", true]);
      const recused = await refusal(() => b.add("grievance", { summary: "x", facilitator: "owl", involved: ["owl"] }));
      expect([recused.code, recused.message.includes("facilitator")]).toEqual(["invalid", true]);
      // A confidential grievance's steps and facilitator are withheld like its text.
      const c = id(await b.add("grievance", { summary: "Private", confidential: true, readers: ["owl"], facilitator: "owl" }));
      const hidden = (await b.list("grievance", 10, 0)).find((r) => r.id === c)!;
      expect([hidden.summary, hidden.facilitator, hidden.steps]).toEqual(["[confidential]", "", []]);
      // An after-action review's actions, ticked off with the moment they were.
      const water = { action: "More water", owner: "owl", due: null, done: false, done_at: null };
      const n = id(await b.add("after_action", { title: "Night 1", action_items: [water] }));
      expect((await refusal(() => b.update(n, { action_items: [{ ...water, action: " " }] }))).code).toBe("invalid");
      await b.update(n, { action_items: [{ ...water, done: true }, { ...water, action: "A second radio" }] });
      const items = (await b.list("after_action", 10, 0)).find((r) => r.id === n)!.action_items;
      expect(items.map((a) => [a.action, a.done, !!a.done_at])).toEqual([
        ["More water", true, true],
        ["A second radio", false, false],
      ]);
      // A handoff is append-only: the next shift acknowledges it once, by an amendment.
      const place = id(await b.add("place", { name: "Gate" }));
      const role = id(await b.add("role", { name: "Gate watch" }));
      const shift = id(
        await b.add("shift", { role, place, start: "2026-11-25T08:00:00Z", end: "2026-11-25T12:00:00Z", needed: 1 }),
      );
      const h = id(await b.add("handoff", { shift, note: "Gate 2 lock is stiff" }));
      expect((await refusal(() => b.update(h, { acknowledged_by: "owl" }))).code).toBe("append_only");
      expect(((await b.acknowledgeHandoff(h)) as { acknowledged_by?: string }).acknowledged_by).toBe("kestrel");
      const listed = (await b.list("handoff", 10, 0)).find((r) => r.id === h)!;
      expect([listed.acknowledged_by, listed.amended]).toEqual(["kestrel", true]);
      const twice = await refusal(() => b.acknowledgeHandoff(h));
      expect([twice.code, twice.message.includes("kestrel already acknowledged it")]).toEqual(["invalid", true]);
      // No one acknowledges in another's name, by an amendment or at creation.
      const h2 = id(await b.add("handoff", { shift, note: "Radio 3 is flat" }));
      const other = await refusal(() => b.amend(h2, "acknowledged_by", "owl", "owl read it"));
      expect([other.code, other.message.includes("not another name")]).toEqual(["invalid", true]);
      expect((await refusal(() => b.add("handoff", { shift, note: "x", acknowledged_by: "owl" }))).code).toBe("invalid");
    });

    it("closes a check-in and a follow-up once, by an amendment, and never edits them", async () => {
      const b = await hub(fresh);
      const v = id(await b.add("volunteer", { handle: "swift-otter" }));
      const ci = id(await b.add("check_in", { volunteer: v, checked_in: "2026-11-25T08:00:00Z" }));
      expect((await refusal(() => b.update(ci, { checked_out: "2026-11-25T12:00:00Z" }))).code).toBe("append_only");
      const out = (await b.close(ci)) as { checked_out?: string | null };
      expect(typeof out.checked_out).toBe("string");
      const row = (await b.list("check_in", 10, 0)).find((r) => r.id === ci)!;
      expect([!!row.checked_out, row.amended]).toEqual([true, true]);
      const twice = await refusal(() => b.close(ci));
      expect([twice.code, twice.message.includes("checked out already")]).toEqual(["invalid", true]);
      const inc = id(await b.add("incident", { occurred: "2026-11-25T09:40:00Z", severity: 2, description: "Cut hand" }));
      const f = id(await b.add("follow_up", { incident: inc, action: "Call back", owner: "owl" }));
      expect((await refusal(() => b.update(f, { done: true }))).code).toBe("append_only");
      expect(((await b.close(f)) as { done?: boolean }).done).toBe(true);
      const listed = (await b.list("follow_up", 10, 0)).find((r) => r.id === f)!;
      expect([listed.done, listed.amended]).toEqual([true, true]);
      expect((await refusal(() => b.close(f))).message).toContain("done already");
      // Nothing else is closed.
      const other = await refusal(() => b.close(inc));
      expect([other.code, other.message.includes("only check-ins")]).toEqual(["invalid", true]);
    });

    it("keeps contacts by consent, reads them only for a logged reason, and erases them", async () => {
      const b = await hub(fresh);
      const quiet = id(await b.add("volunteer", { handle: "quiet-fox", consent: { contact: true, photo: false, share: false } }));
      const loud = id(await b.add("volunteer", { handle: "loud-owl", consent: { contact: true, photo: false, share: true } }));
      const bad = await refusal(() => b.setContact(quiet, { name: " ", phone: "" }));
      expect(bad.code).toBe("invalid");
      const q = await b.setContact(quiet, { name: "Amal Haddad", phone: "+34 600" });
      const l = await b.setContact(loud, { name: "Bo Lind" });
      expect(q.state).toMatchObject({ state: "held", here_only: true, ours: true });
      expect(l.state).toMatchObject({ state: "held", here_only: false, ours: true });
      expect(q.vault).toBeTruthy();
      // The record names the contact; the contact is not in the record.
      const rec = (await b.show(quiet)).record as Record<string, unknown>;
      expect(rec.contact).toBe(q.vault);
      expect(JSON.stringify(rec)).not.toContain("Amal");
      const all = await b.contacts();
      expect(all.map((c) => [c.label, c.kind])).toEqual([
        ["loud-owl", "volunteer"],
        ["quiet-fox", "volunteer"],
      ]);
      expect(all.find((c) => c.record === quiet)?.consent).toEqual({ contact: true, photo: false, share: false });
      // A contact is never typed into a record, nor pointed at another's entry by hand: only
      // the contact form sets it (a phone number in the field would stay in the record's history).
      const typed = await refusal(() => b.add("request", { category: "food", quantity: 1, contact: "+34 600 123 456" }));
      expect([typed.code, typed.message.includes("contact")]).toEqual(["invalid", true]);
      const named = await refusal(() => b.add("volunteer", { handle: "sly-cat", contact: q.vault }));
      expect([named.code, named.message.includes("contact form")]).toEqual(["invalid", true]);
      const pointed = await refusal(() => b.update(loud, { contact: q.vault }));
      expect([pointed.code, pointed.message.includes("contact form")]).toEqual(["invalid", true]);
      expect(((await b.show(loud)).record as Record<string, unknown>).contact).toBe(l.vault);
      // Access needs are health data: kept with the contact, never typed into the record (its
      // history is kept for good); one written there before may be cleared.
      const needs = await refusal(() => b.add("volunteer", { handle: "odd-hare", access_needs: "wheelchair user" }));
      expect([needs.code, needs.message.includes("access_needs"), needs.message.includes("contact form")]).toEqual(["invalid", true, true]);
      const later = await refusal(() => b.update(loud, { access_needs: "diabetic" }));
      expect([later.code, later.message.includes("health data")]).toEqual(["invalid", true]);
      await b.update(loud, { access_needs: "" });
      expect(((await b.show(loud)).record as Record<string, unknown>).access_needs).toBe("");
      // A read needs a reason; a refused read is not logged.
      const why = await refusal(() => b.readContact(quiet, " ok "));
      expect([why.code, why.message.includes("reason")]).toEqual(["invalid", true]);
      expect(await b.contactReads(10)).toEqual([]);
      expect(await b.readContact(quiet, "call about the night shift")).toEqual({ name: "Amal Haddad", phone: "+34 600" });
      const reads = await b.contactReads(10);
      expect(reads.map((r) => [r.by, r.record, r.vault, r.reason])).toEqual([["kestrel", quiet, q.vault, "call about the night shift"]]);
      // No one unlocked, no read.
      await b.lockPerson();
      expect((await refusal(() => b.readContact(quiet, "just looking"))).code).toBe("not_allowed");
      await b.unlockPerson("kestrel", null);
      // Replaced in place; erased for good.
      const q2 = await b.setContact(quiet, { phone: "+34 611", access_needs: "step-free access" });
      expect(q2.vault).toBe(q.vault);
      // The fields given change the contact's, the others stay; one given empty is removed;
      // nothing left is refused.
      expect(await b.readContact(quiet, "plan the night shift")).toEqual({ name: "Amal Haddad", phone: "+34 611", access_needs: "step-free access" });
      await b.setContact(quiet, { name: "Amal Haddad", phone: "" });
      expect(await b.readContact(quiet, "plan the night shift")).toEqual({ name: "Amal Haddad", access_needs: "step-free access" });
      const empty = await refusal(() => b.setContact(quiet, { name: "", access_needs: " " }));
      expect([empty.code, empty.message.includes("erase")]).toEqual(["invalid", true]);
      expect((await refusal(() => b.setContact(quiet, {}))).code).toBe("invalid");
      // Refused alike whatever the contact holds: the refusal tells nothing of it.
      const alone = await refusal(() => b.setContact(quiet, { phone: "" }));
      expect([alone.code, alone.message]).toEqual(["invalid", empty.message]);
      const gone = await b.eraseContact(quiet);
      expect(gone.state.state).toBe("erased");
      // The reasons given for reading it are blanked; who read it stays.
      expect((await b.contactReads(10)).map((r) => [r.by, r.record, r.reason])).toEqual([
        ["kestrel", quiet, ""],
        ["kestrel", quiet, ""],
        ["kestrel", quiet, ""],
      ]);
      expect((await refusal(() => b.readContact(quiet, "call about the night shift"))).code).toBe("not_found");
      const hall = id(await b.add("place", { name: "Hall" }));
      expect((await refusal(() => b.eraseContact(hall))).code).toBe("invalid");
      // Consent to share withdrawn: the shared copy is erased (the reasons it was read for
      // blanked) and the contact is kept here under a new id.
      await b.readContact(loud, "call about the kitchen rota");
      await b.update(loud, { consent: { contact: true, photo: false, share: false } });
      const moved = (await b.contacts()).find((c) => c.record === loud);
      expect(moved?.state).toMatchObject({ state: "held", here_only: true });
      expect(moved?.vault).not.toBe(l.vault);
      expect(await b.readContact(loud, "call about the kitchen rota")).toEqual({ name: "Bo Lind" });
      const old = (await b.contactReads(10)).filter((r) => r.vault === l.vault).map((r) => r.reason);
      expect(old).toEqual([""]);
    });

    it("answers every kind's template with the fields the hub names, no more and no fewer", async () => {
      const b = await hub(fresh);
      for (const [kind, fields] of Object.entries(KIND_FIELDS)) {
        expect([kind, Object.keys(await b.template(kind as Kind)).sort()]).toEqual([kind, [...fields].sort()]);
      }
    });

    it("names the currencies the ledger takes, with their minor units", async () => {
      const b = await fresh();
      const c = await b.currencies();
      expect(c).toContainEqual({ code: "EUR", digits: 2 });
      expect(c).toContainEqual({ code: "JPY", digits: 0 });
      expect(c).toContainEqual({ code: "KWD", digits: 3 });
    });

    it("tells the window which records changed", async () => {
      const b = await hub(fresh);
      const seen: HubEvent[] = [];
      const stop = b.onEvent((e) => seen.push(e));
      const place = id(await b.add("place", { name: "Kitchen" }));
      const deadline = Date.now() + 5000;
      while (!seen.some((e) => e.type === "records_changed" && e.ids.includes(place)) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      stop();
      expect(seen).toContainEqual({ type: "records_changed", ids: [place] });
    });
  });
}
