import { describe, expect, it } from "vitest";
import { coerce, recordLabel, toLocalInput, toUtc } from "./options";

describe("form values", () => {
  it("turn back into the template's types", () => {
    expect(coerce(0, "12")).toBe(12);
    expect(coerce(0, "")).toBe(0);
    expect(coerce(false, "true")).toBe(true);
    expect(coerce([], "first aid, Arabic ,")).toEqual(["first aid", "Arabic"]);
    expect(coerce(null, " ")).toBeNull();
    expect(coerce("", "x")).toBe("x");
  });
  it("keep times in UTC as the hub writes them", () => {
    const utc = "2026-11-25T10:30:00Z";
    expect(toUtc(toLocalInput(utc))).toBe(utc);
    expect(toLocalInput("1970-01-01T00:00:00Z")).toBe("");
  });
  it("label records by what people call them", () => {
    expect(recordLabel({ id: "x", name: "Water" })).toBe("Water");
    expect(recordLabel({ id: "x", handle: "kestrel" })).toBe("kestrel");
    expect(recordLabel({ id: "x" })).toBe("x");
  });
});
