import { describe, expect, it } from "vitest";
import { readSla, remaining } from "./sla";

const at = (iso: string) => Date.parse(iso);
const moments = {
  sla_breached_at: null,
  sla_next_warn_at: "2026-12-03T10:45:00Z",
  sla_next_due_at: "2026-12-03T11:00:00Z",
};

describe("readSla", () => {
  it("counts down, warns from the warning moment and reads breached from the due moment on", () => {
    expect(readSla(moments, at("2026-12-03T10:00:00Z"))).toEqual({ tone: "ok", label: "Due in 1:00:00" });
    expect(readSla(moments, at("2026-12-03T10:44:59.500Z"))).toEqual({ tone: "ok", label: "Due in 15:01" });
    expect(readSla(moments, at("2026-12-03T10:45:00Z"))).toEqual({ tone: "warning", label: "Due in 15:00" });
    expect(readSla(moments, at("2026-12-03T10:59:59.001Z"))).toEqual({ tone: "warning", label: "Due in 0:01" });
    expect(readSla(moments, at("2026-12-03T11:00:00Z"))).toEqual({ tone: "breached", label: "Breached" });
  });

  it("shows a recorded breach whatever the clocks, and nothing without a running clock", () => {
    expect(readSla({ ...moments, sla_breached_at: "2026-12-03T09:00:00Z" }, at("2026-12-03T08:00:00Z")).tone).toBe("breached");
    expect(readSla({ sla_breached_at: null, sla_next_due_at: null, sla_next_warn_at: null }, 0).tone).toBe("none");
  });

  it("formats what is left", () => {
    expect(remaining(0)).toBe("0:00");
    expect(remaining(61_000)).toBe("1:01");
    expect(remaining(3_600_000 + 5_000)).toBe("1:00:05");
    expect(remaining(-5)).toBe("0:00");
  });
});
