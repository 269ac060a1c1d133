import { describe, expect, it } from "vitest";
import { formatMoney, parseMoney } from "./money";

describe("money", () => {
  it("reads amounts exactly in the currency's minor unit", () => {
    expect(parseMoney("1,234.5", "USD")).toBe(123450);
    expect(parseMoney("0.10", "USD")).toBe(10);
    expect(parseMoney("19.99", "EUR")).toBe(1999);
    expect(parseMoney("500", "JPY")).toBe(500);
    expect(parseMoney("1.005", "USD")).toBeNull();
    expect(parseMoney("1.5", "JPY")).toBeNull();
    expect(parseMoney("-3", "USD")).toBeNull();
    expect(parseMoney("abc", "USD")).toBeNull();
    expect(parseMoney("99999999999999999999", "USD")).toBeNull();
  });

  it("shows them with the currency's decimals", () => {
    expect(formatMoney(123450, "USD", "en-US")).toBe("$1,234.50");
    expect(formatMoney(500, "JPY", "en-US")).toBe("¥500");
  });
});
