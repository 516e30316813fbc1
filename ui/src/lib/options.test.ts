import { describe, expect, it } from "vitest";
import { coerce, fromMinor, recordLabel, toLocalInput, toMinor, toUtc } from "./options";

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

describe("amounts", () => {
  it("are typed in the currency's units and kept in minor units", () => {
    expect(toMinor("42.50", 2, "amount")).toBe(4250);
    expect(toMinor("42,5", 2, "amount")).toBe(4250);
    expect(toMinor("42", 2, "amount")).toBe(4200);
    expect(toMinor("1500", 0, "amount")).toBe(1500);
    expect(toMinor("1.234", 3, "amount")).toBe(1234);
    expect(fromMinor(4250, 2)).toBe("42.50");
    expect(fromMinor(7, 2)).toBe("0.07");
    expect(fromMinor(1500, 0)).toBe("1500");
  });
  it("refuse what is not an amount, naming the field and the rule", () => {
    expect(() => toMinor("42.505", 2, "amount")).toThrow(expect.objectContaining({ message: "amount: at most 2 digits after the point" }));
    expect(() => toMinor("1.5", 0, "amount")).toThrow(expect.objectContaining({ message: expect.stringContaining("at most 0 digits") }));
    expect(() => toMinor("forty", 2, "amount")).toThrow(expect.objectContaining({ message: expect.stringContaining("not an amount") }));
    expect(() => toMinor("", 2, "amount")).toThrow(expect.objectContaining({ code: "invalid" }));
  });
});
