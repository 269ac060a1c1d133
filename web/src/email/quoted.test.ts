import { describe, expect, it } from "vitest";
import { splitQuoted } from "./quoted";

describe("splitQuoted", () => {
  it("folds what follows the attribution line", () => {
    const text = "Thanks, that works.\n\nOn Tue, 1 Dec 2026 at 10:00, Ann <ann@example.com> wrote:\n> Does 3pm suit?\n> Ann";
    expect(splitQuoted(text)).toEqual({
      fresh: "Thanks, that works.",
      quoted: "On Tue, 1 Dec 2026 at 10:00, Ann <ann@example.com> wrote:\n> Does 3pm suit?\n> Ann",
    });
  });

  it("folds a bare run of quoted lines", () => {
    expect(splitQuoted("Yes.\n> Can you?\n")).toEqual({ fresh: "Yes.", quoted: "> Can you?\n" });
  });

  it("keeps a message with no quote, or one that starts quoting, whole", () => {
    expect(splitQuoted("Hello\nthere")).toEqual({ fresh: "Hello\nthere", quoted: null });
    expect(splitQuoted("> only a quote")).toEqual({ fresh: "> only a quote", quoted: null });
  });

  it("does not take a line that mentions writing for an attribution", () => {
    expect(splitQuoted("On Monday I wrote the report.\nBest").quoted).toBeNull();
  });
});
