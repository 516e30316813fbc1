// Choices the hub's model accepts for enumerated fields (crates/model/src/records.rs), and which
// fields refer to records of which kind: what the generic form turns into selects.

export const CHOICES: Record<string, Record<string, string[]>> = {
  place: { type: ["site", "staging", "route", "vehicle"] },
  item: {
    category: ["food", "water", "medical", "hygiene", "shelter", "power", "tools", "transport", "communications", "other"],
    condition: ["new", "good", "used", "damaged"],
  },
  movement: { type: ["receive", "issue", "transfer", "adjust", "discard"] },
  request: { urgency: ["low", "normal", "high", "critical"], status: ["open", "matched", "in_transit", "fulfilled", "cancelled"] },
  offer: { status: ["open", "matched", "in_transit", "fulfilled", "cancelled"] },
  allocation: { status: ["active", "delivered", "released"] },
  incident: {
    category: ["medical", "safety", "police_security", "weather", "supply_interruption", "accessibility", "conduct", "near_miss", "other"],
    status: ["open", "monitoring", "resolved"],
    severity: ["1", "2", "3", "4", "5"],
  },
  approval: { decision: ["approve", "reject"] },
  grievance: { status: ["received", "investigating", "resolved", "dismissed"] },
};

export const SKILLS = [
  "first_aid", "medic", "translation", "childcare", "marshal", "de_escalation", "legal_observer", "driver", "logistics",
  "cook", "radio", "other",
];

export const REFS: Record<string, string> = {
  item: "item",
  place: "place",
  to_place: "place",
  shift: "shift",
  volunteer: "volunteer",
  expense: "expense",
  request: "request",
  offer: "offer",
  incident: "incident",
  role: "role",
  next_shift: "shift",
};

export const DATETIME_FIELDS = [
  "start", "end", "occurred", "needed_by", "needed_from", "available_until", "effective", "checked_in", "checked_out", "due",
];
export const DATE_FIELDS = ["date", "expiry"];

/** Fields the hub fills or signs itself: never shown in forms. */
export const HIDDEN = ["sig", "signer", "consent", "limits", "counted", "contact"];

/** A label for a record, for lists and selects. */
export function recordLabel(r: Record<string, unknown>): string {
  for (const k of ["name", "handle", "title", "summary", "description", "role", "payee", "purpose"]) {
    if (typeof r[k] === "string" && r[k]) return r[k] as string;
  }
  return String(r.id ?? "");
}

/** Turns form text back into the type the template had. */
export function coerce(template: unknown, value: unknown): unknown {
  const text = value === null || value === undefined ? "" : String(value);
  if (typeof template === "number") return text.trim() === "" ? 0 : Number(text);
  if (typeof template === "boolean") return text === "true";
  if (Array.isArray(template)) return text.split(",").map((s) => s.trim()).filter(Boolean);
  if (template === null) return text.trim() === "" ? null : text;
  return text;
}

/** `datetime-local` input value to the hub's RFC 3339 UTC text, and back. */
export function toUtc(local: string): string {
  return local ? new Date(local).toISOString().replace(/\.\d{3}Z$/, "Z") : "";
}
export function toLocalInput(utc: unknown): string {
  if (typeof utc !== "string" || !utc || utc.startsWith("1970")) return "";
  const d = new Date(utc);
  const off = d.getTimezoneOffset() * 60000;
  return new Date(d.getTime() - off).toISOString().slice(0, 16);
}
