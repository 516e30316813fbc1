// Choices the hub's model accepts for enumerated fields (crates/model/src/records.rs), and which
// fields refer to records of which kind: what the generic form turns into selects.

import type * as H from "./hub.gen";

// Each list is typed by the hub's own enum (hub.gen.ts): a value the hub does not know fails
// the UI's type check.
const CATEGORIES: H.Category[] = ["food", "water", "medical", "hygiene", "shelter", "power", "tools", "transport", "communications", "other"];

const FLOW: H.FlowStatus[] = ["open", "matched", "in_transit", "fulfilled", "cancelled"];

export const SKILLS: H.SkillKind[] = [
  "first_aid", "medic", "translation", "childcare", "marshal", "de_escalation", "legal_observer", "driver", "logistics",
  "cook", "radio", "other",
];

export const CHOICES: Record<string, Record<string, string[]>> = {
  place: { type: ["site", "staging", "route", "vehicle"] satisfies H.PlaceKind[] },
  item: {
    category: CATEGORIES,
    condition: ["new", "good", "used", "damaged"] satisfies H.Condition[],
  },
  movement: { type: ["receive", "issue", "transfer", "adjust", "discard"] satisfies H.MovementKind[] },
  request: {
    category: CATEGORIES,
    skill: SKILLS,
    urgency: ["low", "normal", "high", "critical"] satisfies H.Urgency[],
    status: FLOW,
  },
  offer: { category: CATEGORIES, skill: SKILLS, status: FLOW },
  role: { skill: SKILLS },
  allocation: { status: ["active", "delivered", "released"] satisfies H.AllocationStatus[] },
  incident: {
    category: [
      "medical", "safety", "police_security", "weather", "supply_interruption", "accessibility", "conduct", "near_miss", "other",
    ] satisfies H.IncidentCategory[],
    status: ["open", "monitoring", "resolved"] satisfies H.IncidentStatus[],
    severity: ["1", "2", "3", "4", "5"],
  },
  approval: { decision: ["approve", "reject"] satisfies H.Decision[] },
  grievance: { status: ["received", "investigating", "resolved", "dismissed"] satisfies H.GrievanceStatus[] },
};

export const REFS: Record<string, H.Kind> = {
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

/** Today's date in this computer's time zone, as a date field takes it (YYYY-MM-DD). */
export function today(): string {
  const d = new Date();
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 10);
}

/** "42.50" in a currency with `digits` minor digits → 4250. Refuses what is not an amount,
 * naming the field as `label`, with the reason. */
export function toMinor(text: string, digits: number, label: string): number {
  const t = text.trim().replace(",", ".");
  const m = /^(-?)(\d*)(?:\.(\d*))?$/.exec(t);
  if (!t || !m || (!m[2] && !m[3])) throw { code: "invalid", message: `${label}: "${text}" is not an amount like 42.50` };
  const frac = m[3] ?? "";
  if (frac.length > digits)
    throw { code: "invalid", message: `${label}: at most ${digits} digit${digits === 1 ? "" : "s"} after the point` };
  const minor = Number(m[2] || "0") * 10 ** digits + Number(frac.padEnd(digits, "0") || "0");
  return m[1] ? -minor : minor;
}

/** 4250 with 2 minor digits → "42.50". */
export function fromMinor(minor: number, digits: number): string {
  const sign = minor < 0 ? "-" : "";
  const a = Math.abs(minor);
  if (digits === 0) return `${sign}${a}`;
  const p = 10 ** digits;
  return `${sign}${Math.floor(a / p)}.${String(a % p).padStart(digits, "0")}`;
}

/** A moment the hub wrote (RFC 3339, UTC) as people here read it: in this computer's time zone,
 * in the language's own way ("26 Nov 2026, 14:05"). Anything else is shown as it is. */
export function when(iso: unknown, lang: string): string {
  const d = typeof iso === "string" ? new Date(iso) : null;
  if (!d || Number.isNaN(d.getTime())) return String(iso ?? "");
  return new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "short", hourCycle: "h23" }).format(d);
}

/** A moment for printed sheets: this computer's time zone, `YYYY-MM-DD HH:MM`, the same in every
 * language (ICS forms read 24-hour times). */
export function stamp(iso: unknown): string {
  const d = typeof iso === "string" ? new Date(iso) : null;
  if (!d || Number.isNaN(d.getTime())) return String(iso ?? "");
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}
