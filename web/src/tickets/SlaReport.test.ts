import { describe, expect, it } from "vitest";
import { byMetric, durationLabel } from "./SlaReport";

const row = (metric: string, group: string | null, met: number, breached = 0, overdue = 0) => ({
  metric,
  group,
  met,
  breached,
  overdue,
});

describe("the SLA report's shaping", () => {
  it("groups rows by metric in the report's order, biggest group first", () => {
    const shaped = byMetric([row("first_response", "a", 1), row("resolution", "a", 5), row("first_response", "b", 2, 3)]);
    expect(shaped.map(([metric]) => metric)).toEqual(["first_response", "resolution"]);
    expect(shaped[0]?.[1].map((r) => r.group)).toEqual(["b", "a"]);
  });

  it("reads durations at the scale people use", () => {
    expect(durationLabel(null)).toBe("—");
    expect(durationLabel(42)).toBe("42 s");
    expect(durationLabel(720)).toBe("12 min");
    expect(durationLabel(3.5 * 3600)).toBe("3.5 h");
    expect(durationLabel(2 * 86_400)).toBe("2.0 d");
  });
});
