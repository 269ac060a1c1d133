import { useState, type FormEvent } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, fieldsOf, unwrap, type Schemas } from "../api/client";
import { Button, Field } from "../components/Field";
import { Problem } from "../components/Problem";

type Weekday = Schemas["Weekday"];
const WEEKDAYS: Weekday[] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

/** A member's bookable hours, their booking links, and the bookings to come (live). */
export function Calendar() {
  return (
    <div className="mx-auto flex max-w-5xl flex-col gap-8 p-4">
      <UpcomingBookings />
      <BookingLinks />
      <Availability />
    </div>
  );
}

function UpcomingBookings() {
  const now = new Date();
  const to = new Date(now.getTime() + 60 * 24 * 3600 * 1000);
  const bookings = useQuery({
    queryKey: ["bookings", "upcoming"],
    queryFn: async () =>
      unwrap(await api.GET("/api/v1/bookings", { params: { query: { from: now.toISOString(), to: to.toISOString() } } })).data,
  });
  return (
    <section aria-labelledby="upcoming-heading">
      <h1 id="upcoming-heading" className="mb-2 text-lg font-semibold">
        Upcoming bookings
      </h1>
      <Problem error={bookings.error} />
      {bookings.data?.length === 0 && <p className="text-slate-500">Nothing booked in the next 60 days.</p>}
      <ul aria-label="Upcoming bookings" className="flex flex-col gap-1">
        {bookings.data?.map((b) => (
          <li key={b.id} className="rounded bg-white px-3 py-2 shadow-sm">
            <time dateTime={b.starts_at} className="font-medium">
              {new Date(b.starts_at).toLocaleString()}
            </time>{" "}
            · {b.invitee_name} &lt;{b.invitee_email}&gt; · <span className="capitalize">{b.status}</span>
          </li>
        ))}
      </ul>
    </section>
  );
}

function BookingLinks() {
  const queryClient = useQueryClient();
  const me = useQuery({ queryKey: ["me"], queryFn: async () => unwrap(await api.GET("/api/v1/me")).data });
  const links = useQuery({
    queryKey: ["booking-links"],
    queryFn: async () => unwrap(await api.GET("/api/v1/booking-links")).data,
  });
  const [title, setTitle] = useState("");
  const [slug, setSlug] = useState("");
  const [duration, setDuration] = useState("30");
  const [fields, setFields] = useState<Record<string, string>>({});
  const create = useMutation({
    mutationFn: async () =>
      unwrap(
        await api.POST("/api/v1/booking-links", {
          body: {
            title,
            slug: slug || null,
            duration_minutes: Number(duration),
            member_ids: me.data?.user ? [me.data.user.id] : [],
          },
        }),
      ),
    onSuccess: () => {
      setTitle("");
      setSlug("");
      setFields({});
      void queryClient.invalidateQueries({ queryKey: ["booking-links"] });
    },
    onError: (error) => setFields(fieldsOf(error)),
  });
  function submit(event: FormEvent) {
    event.preventDefault();
    create.mutate();
  }
  return (
    <section aria-labelledby="links-heading">
      <h2 id="links-heading" className="mb-2 text-lg font-semibold">
        Booking links
      </h2>
      <ul className="mb-3 flex flex-col gap-1">
        {links.data?.map((l) => (
          <li key={l.id} className="flex flex-wrap gap-2 rounded bg-white px-3 py-2 shadow-sm">
            <span className="font-medium">{l.title}</span>
            <span className="text-slate-500">{l.duration_minutes} min</span>
            <a href={`/book/${l.slug}`} className="text-blue-700 underline">
              /book/{l.slug}
            </a>
            {!l.active && <span className="text-slate-500">(inactive)</span>}
          </li>
        ))}
      </ul>
      <form onSubmit={submit} aria-label="New booking link" className="flex flex-wrap items-end gap-2" noValidate>
        <Field label="Title" value={title} onChange={(e) => setTitle(e.target.value)} error={fields["title"]} />
        <Field label="Address (slug)" value={slug} onChange={(e) => setSlug(e.target.value)} error={fields["slug"]} />
        <Field label="Minutes" inputMode="numeric" value={duration} onChange={(e) => setDuration(e.target.value)} error={fields["duration_minutes"]} />
        <Button type="submit" disabled={create.isPending}>
          Add link
        </Button>
      </form>
      {create.isError && Object.keys(fields).length === 0 && (
        <p role="alert" className="text-red-700">
          {create.error.message}
        </p>
      )}
    </section>
  );
}

interface WindowRow {
  weekday: Weekday;
  on: boolean;
  start: string;
  end: string;
}

function Availability() {
  const queryClient = useQueryClient();
  const current = useQuery({
    queryKey: ["availability"],
    queryFn: async () => unwrap(await api.GET("/api/v1/calendar/availability")).data,
  });
  const [edited, setEdited] = useState<{ zone: string; rows: WindowRow[] } | null>(null);
  const stored = current.data;
  const zone = edited?.zone ?? stored?.time_zone ?? Intl.DateTimeFormat().resolvedOptions().timeZone;
  const rows: WindowRow[] =
    edited?.rows ??
    WEEKDAYS.map((weekday) => {
      const window = stored?.windows.find((w) => w.weekday === weekday);
      return { weekday, on: window !== undefined, start: window?.start ?? "09:00", end: window?.end ?? "17:00" };
    });
  const save = useMutation({
    mutationFn: async () =>
      unwrap(
        await api.PUT("/api/v1/calendar/availability", {
          body: {
            time_zone: zone,
            windows: rows.filter((r) => r.on).map(({ weekday, start, end }) => ({ weekday, start, end })),
            overrides: stored?.overrides ?? [],
          },
        }),
      ),
    onSuccess: () => {
      setEdited(null);
      void queryClient.invalidateQueries({ queryKey: ["availability"] });
    },
  });
  const change = (i: number, patch: Partial<WindowRow>) =>
    setEdited({ zone, rows: rows.map((r, j) => (j === i ? { ...r, ...patch } : r)) });
  return (
    <section aria-labelledby="hours-heading">
      <h2 id="hours-heading" className="mb-2 text-lg font-semibold">
        Bookable hours
      </h2>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          save.mutate();
        }}
        className="flex flex-col gap-2"
      >
        <Field label="Time zone" value={zone} onChange={(e) => setEdited({ zone: e.target.value, rows })} />
        {rows.map((r, i) => (
          <fieldset key={r.weekday} className="flex flex-wrap items-center gap-2">
            <legend className="sr-only">{r.weekday}</legend>
            <label className="flex w-32 items-center gap-2 capitalize">
              <input type="checkbox" checked={r.on} onChange={(e) => change(i, { on: e.target.checked })} />
              {r.weekday}
            </label>
            <label className="sr-only" htmlFor={`${r.weekday}-start`}>
              {r.weekday} from
            </label>
            <input id={`${r.weekday}-start`} type="time" value={r.start} disabled={!r.on} onChange={(e) => change(i, { start: e.target.value })} className="rounded border border-slate-300 px-2 py-1" />
            <span aria-hidden>–</span>
            <label className="sr-only" htmlFor={`${r.weekday}-end`}>
              {r.weekday} until
            </label>
            <input id={`${r.weekday}-end`} type="time" value={r.end} disabled={!r.on} onChange={(e) => change(i, { end: e.target.value })} className="rounded border border-slate-300 px-2 py-1" />
          </fieldset>
        ))}
        <Problem error={save.error} />
        <Button type="submit" disabled={save.isPending} className="self-start">
          Save hours
        </Button>
      </form>
    </section>
  );
}
