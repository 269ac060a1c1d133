import { useMemo, useState, type FormEvent } from "react";
import { useParams } from "react-router";
import { useMutation, useQuery } from "@tanstack/react-query";
import { api, ApiError, fieldsOf, unwrap, type Schemas } from "../api/client";
import { Button, Field } from "../components/Field";

type Slot = Schemas["Slot"];

const ZONES: string[] = (() => {
  try {
    return (Intl as unknown as { supportedValuesOf(k: string): string[] }).supportedValuesOf("timeZone");
  } catch {
    return [];
  }
})();

/** A slot's day and time as the invitee reads them, in their chosen zone. */
export function inZone(iso: string, zone: string, options: Intl.DateTimeFormatOptions): string {
  return new Intl.DateTimeFormat(undefined, { timeZone: zone, ...options }).format(new Date(iso));
}

/**
 * The booking page an invitee opens from a link: no account, times in their own zone
 * (changeable), a slot, their name and email, and the booking is made.
 */
export function PublicBooking() {
  const { slug = "" } = useParams();
  const [zone, setZone] = useState(() => Intl.DateTimeFormat().resolvedOptions().timeZone);
  const [chosen, setChosen] = useState<Slot | null>(null);
  const link = useQuery({
    queryKey: ["public-link", slug],
    queryFn: async () => unwrap(await api.GET("/api/v1/public/booking-links/{slug}", { params: { path: { slug } } })).data,
    retry: false,
  });
  const range = useMemo(() => {
    const from = new Date();
    return { from: from.toISOString(), to: new Date(from.getTime() + 14 * 24 * 3600 * 1000).toISOString() };
  }, []);
  const slots = useQuery({
    queryKey: ["public-slots", slug, zone, range.from],
    queryFn: async () =>
      unwrap(
        await api.GET("/api/v1/public/booking-links/{slug}/slots", {
          params: { path: { slug }, query: { ...range, tz: zone } },
        }),
      ).data,
    enabled: link.isSuccess,
  });

  if (link.isPending) return <p className="p-6 text-slate-500">Loading…</p>;
  if (link.isError)
    return (
      <main className="mx-auto max-w-xl p-6">
        <h1 className="text-xl font-semibold">This booking page is not available.</h1>
      </main>
    );

  const byDay = new Map<string, Slot[]>();
  for (const slot of slots.data?.slots ?? []) {
    const day = inZone(slot.start, zone, { weekday: "long", month: "long", day: "numeric" });
    byDay.set(day, [...(byDay.get(day) ?? []), slot]);
  }

  return (
    <main className="mx-auto flex max-w-2xl flex-col gap-4 p-6">
      <h1 className="text-2xl font-semibold">{link.data.title}</h1>
      <p className="text-slate-600">{link.data.duration_minutes} minutes</p>
      <label className="flex flex-col gap-1 text-sm font-medium text-slate-700">
        Your time zone
        <select value={zone} onChange={(e) => setZone(e.target.value)} className="rounded border border-slate-300 px-2 py-2 font-normal">
          {(ZONES.includes(zone) ? ZONES : [zone, ...ZONES]).map((z) => (
            <option key={z} value={z}>
              {z}
            </option>
          ))}
        </select>
      </label>
      {chosen ? (
        <BookingForm slug={slug} slot={chosen} zone={zone} questions={link.data.questions} onBack={() => setChosen(null)} />
      ) : (
        <section aria-label="Open times">
          {slots.isPending && <p className="text-slate-500">Looking for open times…</p>}
          {slots.data && byDay.size === 0 && <p className="text-slate-500">No open times in the next two weeks.</p>}
          {[...byDay].map(([day, daySlots]) => (
            <div key={day} className="mb-3">
              <h2 className="mb-1 font-medium">{day}</h2>
              <ul className="flex flex-wrap gap-2">
                {daySlots.map((slot) => (
                  <li key={slot.start}>
                    <button
                      type="button"
                      onClick={() => setChosen(slot)}
                      className="rounded border border-blue-700 px-3 py-1 text-blue-800 hover:bg-blue-50 focus:outline-2 focus:outline-blue-700"
                    >
                      {inZone(slot.start, zone, { hour: "numeric", minute: "2-digit" })}
                    </button>
                  </li>
                ))}
              </ul>
            </div>
          ))}
        </section>
      )}
    </main>
  );
}

function BookingForm({
  slug,
  slot,
  zone,
  questions,
  onBack,
}: {
  slug: string;
  slot: Slot;
  zone: string;
  questions: Schemas["Question"][];
  onBack: () => void;
}) {
  const [name, setName] = useState("");
  const [email, setEmail] = useState("");
  const [answers, setAnswers] = useState<Record<string, string>>({});
  const [fields, setFields] = useState<Record<string, string>>({});
  const key = useMemo(() => crypto.randomUUID(), []);
  const book = useMutation({
    mutationFn: async () =>
      unwrap(
        await api.POST("/api/v1/public/booking-links/{slug}/bookings", {
          params: { path: { slug }, header: { "Idempotency-Key": key } },
          body: { start: slot.start, tz: zone, name, email, answers },
        }),
      ).data,
    onError: (error) => setFields(fieldsOf(error)),
  });
  function submit(event: FormEvent) {
    event.preventDefault();
    book.mutate();
  }
  const when = inZone(slot.start, zone, { weekday: "long", month: "long", day: "numeric", hour: "numeric", minute: "2-digit" });
  if (book.isSuccess)
    return (
      <section role="status" className="rounded bg-green-50 p-4 text-green-900">
        <h2 className="text-lg font-semibold">{book.data.status === "pending" ? "Requested" : "Booked"}</h2>
        <p>
          {when} ({zone}). A confirmation is on its way to {email}.
        </p>
      </section>
    );
  return (
    <form onSubmit={submit} className="flex flex-col gap-3" noValidate>
      <p>
        <strong>{when}</strong> ({zone}){" "}
        <button type="button" onClick={onBack} className="text-blue-700 underline">
          Choose another time
        </button>
      </p>
      <Field label="Your name" autoComplete="name" value={name} onChange={(e) => setName(e.target.value)} error={fields["name"]} />
      <Field label="Your email" type="email" autoComplete="email" value={email} onChange={(e) => setEmail(e.target.value)} error={fields["email"]} />
      {questions.map((q) => (
        <Field
          key={q.id}
          label={q.label}
          required={q.required}
          value={answers[q.id] ?? ""}
          onChange={(e) => setAnswers((a) => ({ ...a, [q.id]: e.target.value }))}
          error={fields[`answers.${q.id}`]}
        />
      ))}
      {book.isError && Object.keys(fields).length === 0 && (
        <p role="alert" className="text-red-700">
          {book.error instanceof ApiError && book.error.status === 409 ? "That time was just taken. Please choose another." : book.error.message}
        </p>
      )}
      <Button type="submit" disabled={book.isPending} className="self-start">
        Book
      </Button>
    </form>
  );
}
