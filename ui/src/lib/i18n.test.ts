import { describe, expect, it } from "vitest";
import { LANGUAGES, RTL, translate } from "./i18n";

describe("languages", () => {
  const en = LANGUAGES.en;
  for (const [lang, dict] of Object.entries(LANGUAGES)) {
    it(`${lang} has every string, with the same placeholders as English`, () => {
      expect(Object.keys(dict).sort()).toEqual(Object.keys(en).sort());
      for (const [k, v] of Object.entries(dict)) {
        expect(v.trim(), `${lang}:${k}`).not.toBe("");
        const holes = (s: string) => (s.match(/\{\w+\}/g) ?? []).sort();
        expect(holes(v), `${lang}:${k}`).toEqual(holes(en[k as keyof typeof en]));
      }
    });
  }
  it("fills placeholders and reads Arabic right to left", () => {
    expect(translate("fr", "overview.level", { level: 3, reorder: 10 })).toBe("3 sur 10");
    expect(RTL).toEqual(["ar"]);
  });
});

describe("values", () => {
  it("read in the chosen language, with a readable fallback", async () => {
    const { valueLabel } = await import("./i18n");
    expect(valueLabel("es", "in_transit")).toBe("en tránsito");
    expect(valueLabel("ar", "receive")).toBe("استلام");
    expect(valueLabel("en", "police_security")).toBe("police security");
  });
});
