import { describe, expect, it } from "vitest";
import { mergeReads, receiptsBySeq } from "./ConversationView";

describe("read receipts", () => {
  it("never move a reader back", () => {
    const now = mergeReads({}, [{ user_id: "ann", last_read_seq: 5 }]);
    expect(mergeReads(now, [{ user_id: "ann", last_read_seq: 3 }, { user_id: "bob", last_read_seq: 2 }])).toEqual({ ann: 5, bob: 2 });
  });

  it("show each other reader under the newest message they have seen, not the viewer", () => {
    const at = receiptsBySeq({ ann: 5, bob: 2, me: 9, cy: 0 }, [1, 2, 4, 6], "me");
    expect(Object.fromEntries(at)).toEqual({ 4: ["ann"], 2: ["bob"] });
  });
});
