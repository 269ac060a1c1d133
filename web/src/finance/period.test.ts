import { describe, expect, it } from "vitest";
import { periodOf } from "./Invoices";

describe("the summary's periods", () => {
  it("run from the first to the last day, across a year's turn", () => {
    const january = new Date(2027, 0, 15);
    expect(periodOf("month", january)).toEqual({ from: "2027-01-01", to: "2027-01-31" });
    expect(periodOf("last-month", january)).toEqual({ from: "2026-12-01", to: "2026-12-31" });
    expect(periodOf("year", january)).toEqual({ from: "2027-01-01", to: "2027-12-31" });
    expect(periodOf("month", new Date(2028, 1, 3))).toEqual({ from: "2028-02-01", to: "2028-02-29" });
  });
});
