// The invitee's page for a booking, opened from the link in its confirmation email: see it,
// move it to another open time of the same link, or cancel it. No account: the manage
// token arrives in the link's fragment (never sent to any server but as this POST body) and
// is taken off the address bar at once.
import { useMemo, useState } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { ApiError, api, unwrap } from "../api/client";
import { Button } from "../components/Field";
import { Problem } from "../components/Problem";
import { useFragmentToken } from "../pages/AccountLinks";
import { inZone } from "./PublicBooking";

const WHEN: Intl.DateTimeFormatOptions = { weekday: "long", month: "long", day: "numeric", hour: "numeric", minute: "2-digit" };

export function ManageBooking() {
  const token = useFragmentToken();
  const queryClient = useQueryClient();
  const booking = useQuery({
    queryKey: ["managed-booking", token],
    queryFn: async () => unwrap(await api.POST("/api/v1/public/bookings/lookup", { body: { token } })).data,
    enabled: token !== "",
    retry: false,
  });
  const [moving, setMoving] = useState(false);
  const cancel = useMutation({
    mutationFn: async () => unwrap(await api.POST("/api/v1/public/bookings/cancel", { body: { token } })).data,
    onSuccess: () => void queryClient.invalidateQueries({ queryKey: ["managed-booking", token] }),
  });
  const move = useMutation({
    mutationFn: async (start: string) => unwrap(await api.POST("/api/v1/public/bookings/reschedule", { body: { token, start } })).data,
    onSuccess: () => {
      setMoving(false);
      void queryClient.invalidateQueries({ queryKey: ["managed-booking", token] });
    },
  });

  if (token === "" || booking.isError)
    return (
      <main className="mx-auto max-w-xl p-6">
        <h1 className="text-xl font-semibold">This booking link is not valid.</h1>
        <p className="text-slate-600">Open the link from your confirmation email again; it holds the whole address.</p>
      </main>
    );
  if (booking.isPending) return <p className="p-6 text-slate-500">Loading…</p>;
  const b = booking.data;
  const zone = b.time_zone;
  return (
    <main className="mx-auto flex max-w-2xl flex-col gap-4 p-6">
      <h1 className="text-2xl font-semibold">{b.title}</h1>
      <section role="status" aria-label="Your booking" className={`rounded p-4 ${b.status === "cancelled" ? "bg-slate-100" : "bg-green-50"}`}>
        <p className="text-lg" data-testid="booking-when">
          {inZone(b.start, zone, WHEN)} ({zone})
        </p>
        <p data-testid="booking-status">
          {b.status === "cancelled" ? "Cancelled" : b.status === "pending" ? "Requested: waiting for confirmation" : "Confirmed"} · {b.duration_minutes}{" "}
          minutes
        </p>
      </section>
      <Problem error={cancel.error ?? move.error} />
      {b.status !== "cancelled" && !moving && (
        <div className="flex gap-2">
          <Button type="button" onClick={() => setMoving(true)}>
            Choose another time
          </Button>
          <Button type="button" disabled={cancel.isPending} onClick={() => cancel.mutate()} className="bg-red-700 hover:bg-red-800">
            Cancel the booking
          </Button>
        </div>
      )}
      {moving && (
        <OpenTimes
          slug={b.link_slug}
          zone={zone}
          current={b.start}
          busy={move.isPending}
          taken={move.error instanceof ApiError && move.error.status === 409}
          onChoose={(start) => move.mutate(start)}
          onBack={() => setMoving(false)}
        />
      )}
    </main>
  );
}

function OpenTimes(props: {
  slug: string;
  zone: string;
  current: string;
  busy: boolean;
  taken: boolean;
  onChoose: (start: string) => void;
  onBack: () => void;
}) {
  const range = useMemo(() => {
    const from = new Date();
    return { from: from.toISOString(), to: new Date(from.getTime() + 14 * 86_400_000).toISOString() };
  }, []);
  const slots = useQuery({
    queryKey: ["public-slots", props.slug, props.zone, range.from],
    queryFn: async () =>
      unwrap(await api.GET("/api/v1/public/booking-links/{slug}/slots", { params: { path: { slug: props.slug }, query: { ...range, tz: props.zone } } }))
        .data,
  });
  const byDay = new Map<string, string[]>();
  for (const slot of slots.data?.slots ?? []) {
    if (slot.start === props.current) continue;
    const day = inZone(slot.start, props.zone, { weekday: "long", month: "long", day: "numeric" });
    byDay.set(day, [...(byDay.get(day) ?? []), slot.start]);
  }
  return (
    <section aria-label="Open times" className="flex flex-col gap-2">
      <button type="button" onClick={props.onBack} className="self-start text-blue-700 underline">
        Keep the current time
      </button>
      {props.taken && <p role="alert" className="text-red-700">That time was just taken. Please choose another.</p>}
      {slots.isPending && <p className="text-slate-500">Looking for open times…</p>}
      <Problem error={slots.error} />
      {slots.data && byDay.size === 0 && <p className="text-slate-500">No other open times in the next two weeks.</p>}
      {[...byDay].map(([day, starts]) => (
        <div key={day}>
          <h2 className="mb-1 font-medium">{day}</h2>
          <ul className="flex flex-wrap gap-2">
            {starts.map((start) => (
              <li key={start}>
                <button
                  type="button"
                  disabled={props.busy}
                  onClick={() => props.onChoose(start)}
                  className="rounded border border-blue-700 px-3 py-1 text-blue-800 hover:bg-blue-50 focus:outline-2 focus:outline-blue-700"
                >
                  {inZone(start, props.zone, { hour: "numeric", minute: "2-digit" })}
                </button>
              </li>
            ))}
          </ul>
        </div>
      ))}
    </section>
  );
}
