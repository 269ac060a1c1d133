import { Link } from "react-router";
import { useState } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, unwrap, type Schemas } from "../api/client";
import { formatMoney } from "../finance/money";
import { Problem } from "../components/Problem";

type Stage = Schemas["ProspectStage"];
type Prospect = Schemas["Prospect"];
const STAGES: Stage[] = ["discovery", "proposal", "negotiation", "won", "lost"];

/** Prospects by stage: drag a card to another column (or pick its stage) to move it. */
export function Pipeline() {
  const queryClient = useQueryClient();
  const [dragging, setDragging] = useState<string | null>(null);
  const [over, setOver] = useState<Stage | null>(null);
  const prospects = useQuery({
    queryKey: ["prospects"],
    queryFn: async () => unwrap(await api.GET("/api/v1/prospects", { params: { query: { limit: 100 } } })).data,
  });
  const move = useMutation({
    mutationFn: async ({ id, stage }: { id: string; stage: Stage }) =>
      unwrap(await api.PATCH("/api/v1/prospects/{id}", { params: { path: { id } }, body: { stage } })).data,
    // The card moves at once; the list is read again whatever the answer.
    onMutate: async ({ id, stage }) => {
      await queryClient.cancelQueries({ queryKey: ["prospects"] });
      const before = queryClient.getQueryData<Prospect[]>(["prospects"]);
      queryClient.setQueryData<Prospect[]>(["prospects"], (all) => all?.map((p) => (p.id === id ? { ...p, stage } : p)));
      return { before };
    },
    onError: (_error, _vars, context) => queryClient.setQueryData(["prospects"], context?.before),
    onSettled: () => queryClient.invalidateQueries({ queryKey: ["prospects"] }),
  });

  return (
    <div className="flex h-full flex-col gap-2 p-3">
      <h1 className="text-lg font-semibold">Pipeline</h1>
      <Problem error={move.error} />
      <div className="flex min-h-0 flex-1 gap-3 overflow-x-auto">
        {STAGES.map((stage) => {
          const cards = (prospects.data ?? []).filter((p) => p.stage === stage);
          return (
            <section
              key={stage}
              aria-label={stage}
              onDragOver={(e) => {
                e.preventDefault();
                setOver(stage);
              }}
              onDragLeave={() => setOver(null)}
              onDrop={(e) => {
                e.preventDefault();
                const id = e.dataTransfer.getData("text/plain") || dragging;
                setOver(null);
                setDragging(null);
                if (id && prospects.data?.find((p) => p.id === id)?.stage !== stage) move.mutate({ id, stage });
              }}
              className={`flex w-60 shrink-0 flex-col rounded p-2 ${over === stage ? "bg-blue-100" : "bg-slate-100"}`}
            >
              <h2 className="mb-2 text-sm font-semibold capitalize">
                {stage} ({cards.length})
              </h2>
              <ul className="flex flex-col gap-2">
                {cards.map((p) => (
                  <li
                    key={p.id}
                    draggable
                    onDragStart={(e) => {
                      e.dataTransfer.setData("text/plain", p.id);
                      setDragging(p.id);
                    }}
                    className="cursor-grab rounded bg-white p-2 shadow-sm"
                  >
                    <Link to={`/crm/prospects/${p.id}`} className="font-medium text-blue-800 underline">
                      {p.name}
                    </Link>
                    <p className="text-xs text-slate-600">
                      {p.value_minor != null ? formatMoney(p.value_minor, p.currency) : ""}
                    </p>
                    <label className="mt-1 flex items-center gap-1 text-xs text-slate-600">
                      Stage
                      <select
                        value={p.stage}
                        onChange={(e) => move.mutate({ id: p.id, stage: e.target.value as Stage })}
                        className="rounded border border-slate-300 px-1"
                      >
                        {STAGES.map((s) => (
                          <option key={s} value={s}>
                            {s}
                          </option>
                        ))}
                      </select>
                    </label>
                  </li>
                ))}
              </ul>
            </section>
          );
        })}
      </div>
    </div>
  );
}
