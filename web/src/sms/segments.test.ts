import { describe, expect, it } from "vitest";
import { countSegments } from "./segments";

describe("countSegments", () => {
  it("packs GSM-7 text 160 to a message, then 153 per part", () => {
    expect(countSegments("")).toEqual({ encoding: "GSM-7", units: 0, segments: 0 });
    expect(countSegments("a".repeat(160))).toEqual({ encoding: "GSM-7", units: 160, segments: 1 });
    expect(countSegments("a".repeat(161))).toEqual({ encoding: "GSM-7", units: 161, segments: 2 });
    expect(countSegments("a".repeat(306)).segments).toBe(2);
    expect(countSegments("a".repeat(307)).segments).toBe(3);
  });

  it("counts the extension table's characters twice", () => {
    expect(countSegments("€".repeat(80))).toEqual({ encoding: "GSM-7", units: 160, segments: 1 });
    expect(countSegments("€".repeat(81)).segments).toBe(2);
  });

  it("sends anything else as UCS-2: 70, then 67 per part, an emoji taking two", () => {
    expect(countSegments("Grüße, ça va? 😀")).toEqual({ encoding: "UCS-2", units: 16, segments: 1 });
    expect(countSegments("ç".repeat(70) + "ł").segments).toBe(2);
    expect(countSegments("ł".repeat(134)).segments).toBe(2);
    expect(countSegments("ł".repeat(135)).segments).toBe(3);
  });
});
