// Support settings: the business calendars SLA clocks count in, and the SLA policies that give
// tickets their targets (first match by position wins).
import { useState } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, ApiError, fieldsOf, unwrap, type Schemas } from "../api/client";
import { Button, Field } from "../components/Field";
import { Problem } from "../components/Problem";

type Weekday = Schemas["Weekday"];
type Priority = Schemas["Priority"];
const WEEKDAYS: Weekday[] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
const PRIORITIES: Priority[] = ["urgent", "high", "normal", "low"];

const browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone;

function useCalendars() {
  return useQuery({
    queryKey: ["business-calendars"],
    queryFn: async () => unwrap(await api.GET("/api/v1/business-calendars")).data,
  });
}

export function BusinessCalendars() {
  const queryClient = useQueryClient();
  const calendars = useCalendars();
  const remove = useMutation({
    mutationFn: async (id: string) => unwrap(await api.DELETE("/api/v1/business-calendars/{id}", { params: { path: { id } } })),
    onSettled: () => void queryClient.invalidateQueries({ queryKey: ["business-calendars"] }),
  });
  const [name, setName] = useState("");
  const [zone, setZone] = useState(browserZone);
  const [days, setDays] = useState<Weekday[]>(["monday", "tuesday", "wednesday", "thursday", "friday"]);
  const [start, setStart] = useState("09:00");
  const [end, setEnd] = useState("17:00");
  const [holidays, setHolidays] = useState("");
  const [fields, setFields] = useState<Record<string, string>>({});
  const create = useMutation({
    mutationFn: async () => {
      // One closed date per line: `2026-12-25 Christmas` (a name after the date is optional).
      const holidaySpecs = holidays
        .split("\n")
        .map((line) => line.trim())
        .filter(Boolean)
        .map((line) => {
          const [date, ...rest] = line.split(/\s+/);
          return { from: date ?? "", name: rest.join(" ") || null };
        });
      return unwrap(
        await api.POST("/api/v1/business-calendars", {
          body: { name, time_zone: zone, windows: days.map((weekday) => ({ weekday, start, end })), holidays: holidaySpecs },
        }),
      );
    },
    onSuccess: () => {
      setName("");
      setHolidays("");
      setFields({});
      void queryClient.invalidateQueries({ queryKey: ["business-calendars"] });
    },
    onError: (error) => setFields(fieldsOf(error)),
  });
  const windowError = Object.entries(fields).find(([k]) => k.startsWith("windows"))?.[1];
  const holidayError = Object.entries(fields).find(([k]) => k.startsWith("holidays"))?.[1];

  return (
    <div className="mx-auto flex max-w-4xl flex-col gap-6 p-4">
      <section aria-labelledby="calendars-heading">
        <h1 id="calendars-heading" className="mb-2 text-lg font-semibold">
          Business calendars
        </h1>
        <Problem error={calendars.error ?? remove.error} />
        {calendars.data?.length === 0 && <p className="text-slate-600">None yet: SLA clocks count calendar time until a policy names one.</p>}
        <ul aria-label="Business calendars" className="flex flex-col gap-2">
          {calendars.data?.map((c) => (
            <li key={c.id} className="rounded border border-slate-200 bg-white p-3 text-sm">
              <div className="flex gap-2">
                <span className="font-medium">{c.name}</span>
                <span className="text-slate-600">{c.time_zone}</span>
                <button type="button" className="ml-auto text-red-700 underline" onClick={() => remove.mutate(c.id)}>
                  Delete
                </button>
              </div>
              <p>
                {c.always_open
                  ? "Open around the clock"
                  : c.windows.map((w) => `${w.weekday.slice(0, 3)} ${w.start}–${w.end}`).join(", ") || "No working hours"}
              </p>
              {c.holidays.length > 0 && <p className="text-slate-600">Closed: {c.holidays.map((h) => (h.name ? `${h.from} ${h.name}` : h.from)).join(", ")}</p>}
            </li>
          ))}
        </ul>
      </section>
      <section aria-labelledby="new-calendar-heading">
        <h2 id="new-calendar-heading" className="mb-2 font-semibold">
          Add a calendar
        </h2>
        <form
          aria-label="Add a calendar"
          className="flex flex-col gap-2"
          noValidate
          onSubmit={(e) => {
            e.preventDefault();
            create.mutate();
          }}
        >
          <Field label="Name" value={name} onChange={(e) => setName(e.target.value)} error={fields["name"]} />
          <Field label="Time zone" value={zone} onChange={(e) => setZone(e.target.value)} error={fields["time_zone"]} />
          <fieldset className="flex flex-wrap gap-3">
            <legend className="text-sm font-medium">Working days</legend>
            {WEEKDAYS.map((day) => (
              <label key={day} className="flex items-center gap-1 text-sm capitalize">
                <input type="checkbox" checked={days.includes(day)} onChange={(e) => setDays(e.target.checked ? [...days, day] : days.filter((d) => d !== day))} />
                {day}
              </label>
            ))}
          </fieldset>
          <div className="flex gap-2">
            <Field label="Opens" type="time" value={start} onChange={(e) => setStart(e.target.value)} />
            <Field label="Closes" type="time" value={end} onChange={(e) => setEnd(e.target.value)} error={windowError} />
          </div>
          <label className="flex flex-col gap-1 text-sm font-medium text-slate-700">
            Closed dates (one per line: date, then a name)
            <textarea
              value={holidays}
              onChange={(e) => setHolidays(e.target.value)}
              placeholder="2026-12-25 Christmas Day"
              rows={3}
              aria-invalid={holidayError ? true : undefined}
              className="rounded border border-slate-300 px-3 py-2 font-normal"
            />
          </label>
          {holidayError && (
            <p role="alert" className="text-sm text-red-700">
              {holidayError}
            </p>
          )}
          <Button type="submit" disabled={create.isPending} className="self-start">
            Add calendar
          </Button>
          {create.isError && Object.keys(fields).length === 0 && <Problem error={create.error} />}
        </form>
      </section>
    </div>
  );
}

/** Minutes as the targets are read: `90` -> 1 h 30 min. */
export function minutesLabel(minutes: number | null | undefined): string {
  if (minutes === null || minutes === undefined) return "—";
  const days = Math.floor(minutes / 1440);
  const hours = Math.floor((minutes % 1440) / 60);
  const mins = minutes % 60;
  return [days && `${days} d`, hours && `${hours} h`, mins && `${mins} min`].filter(Boolean).join(" ") || "0 min";
}

export function SlaPolicies() {
  const queryClient = useQueryClient();
  const calendars = useCalendars();
  const policies = useQuery({
    queryKey: ["sla-policies"],
    queryFn: async () => unwrap(await api.GET("/api/v1/sla-policies")).data,
  });
  const refresh = () => void queryClient.invalidateQueries({ queryKey: ["sla-policies"] });
  const toggle = useMutation({
    mutationFn: async ({ id, active }: { id: string; active: boolean }) =>
      unwrap(await api.PATCH("/api/v1/sla-policies/{id}", { params: { path: { id } }, body: { active } })),
    onSettled: refresh,
  });
  const remove = useMutation({
    mutationFn: async (id: string) => unwrap(await api.DELETE("/api/v1/sla-policies/{id}", { params: { path: { id } } })),
    onSettled: refresh,
  });
  const calendarName = (id: string | null | undefined) => calendars.data?.find((c) => c.id === id)?.name ?? "calendar time";

  return (
    <div className="mx-auto flex max-w-5xl flex-col gap-6 p-4">
      <section aria-labelledby="policies-heading">
        <h1 id="policies-heading" className="mb-2 text-lg font-semibold">
          SLA policies
        </h1>
        <p className="mb-2 text-sm text-slate-600">A ticket takes the first active policy, by position, whose conditions it meets.</p>
        <Problem error={policies.error ?? toggle.error ?? remove.error} />
        {policies.data?.length === 0 && <p className="text-slate-600">No policy yet: tickets have no SLA clocks.</p>}
        {policies.data && policies.data.length > 0 && (
          <div className="overflow-x-auto">
            <table aria-label="SLA policies" className="w-full text-left text-sm">
              <thead className="bg-slate-100 text-slate-600">
                <tr>
                  <th className="px-2 py-1">#</th>
                  <th className="px-2 py-1">Name</th>
                  <th className="px-2 py-1">Counts in</th>
                  {PRIORITIES.map((p) => (
                    <th key={p} className="px-2 py-1 capitalize">
                      {p}: first / resolve
                    </th>
                  ))}
                  <th className="px-2 py-1">State</th>
                </tr>
              </thead>
              <tbody>
                {policies.data.map((p) => (
                  <tr key={p.id} className="border-b border-slate-100 bg-white">
                    <td className="px-2 py-1">{p.position}</td>
                    <td className="px-2 py-1">{p.name}</td>
                    <td className="px-2 py-1">{calendarName(p.business_calendar_id)}</td>
                    {PRIORITIES.map((priority) => {
                      const target = p.targets[priority];
                      return (
                        <td key={priority} className="px-2 py-1">
                          {minutesLabel(target?.first_response_minutes)} / {minutesLabel(target?.resolution_minutes)}
                        </td>
                      );
                    })}
                    <td className="px-2 py-1">
                      <button type="button" className="underline" onClick={() => toggle.mutate({ id: p.id, active: !p.active })}>
                        {p.active ? "Active" : "Inactive"}
                      </button>
                      <button type="button" className="ml-2 text-red-700 underline" onClick={() => remove.mutate(p.id)}>
                        Delete
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
      <NewPolicy calendars={calendars.data ?? []} onCreated={refresh} />
    </div>
  );
}

function NewPolicy({ calendars, onCreated }: { calendars: Schemas["BusinessCalendarView"][]; onCreated: () => void }) {
  const [name, setName] = useState("");
  const [calendar, setCalendar] = useState("");
  const [minutes, setMinutes] = useState<Record<string, string>>({});
  const [fields, setFields] = useState<Record<string, string>>({});
  const create = useMutation({
    mutationFn: async () => {
      const read = (key: string): number | null => {
        const text = (minutes[key] ?? "").trim();
        if (text === "") return null;
        const value = Number(text);
        if (!Number.isInteger(value) || value <= 0) {
          throw new ApiError(400, "validation_failed", "Check the targets.", { fields: { [key]: "a whole number of minutes above 0" } });
        }
        return value;
      };
      const targets: Schemas["Targets"] = {};
      for (const priority of PRIORITIES) {
        const first = read(`targets.${priority}.first_response_minutes`);
        const resolution = read(`targets.${priority}.resolution_minutes`);
        if (first !== null || resolution !== null) targets[priority] = { first_response_minutes: first, resolution_minutes: resolution };
      }
      return unwrap(await api.POST("/api/v1/sla-policies", { body: { name, targets, business_calendar_id: calendar || null } }));
    },
    onSuccess: () => {
      setName("");
      setMinutes({});
      setFields({});
      onCreated();
    },
    onError: (error) => setFields(fieldsOf(error)),
  });
  const targetsError = fields["targets"];
  return (
    <section aria-labelledby="new-policy-heading">
      <h2 id="new-policy-heading" className="mb-2 font-semibold">
        Add a policy
      </h2>
      <form
        aria-label="Add a policy"
        className="flex flex-col gap-2"
        noValidate
        onSubmit={(e) => {
          e.preventDefault();
          create.mutate();
        }}
      >
        <Field label="Policy name" value={name} onChange={(e) => setName(e.target.value)} error={fields["name"]} />
        <label className="flex flex-col gap-1 text-sm font-medium text-slate-700">
          Count time in
          <select value={calendar} onChange={(e) => setCalendar(e.target.value)} className="rounded border border-slate-300 px-2 py-2 font-normal">
            <option value="">Calendar time (around the clock)</option>
            {calendars.map((c) => (
              <option key={c.id} value={c.id}>
                {c.name} ({c.time_zone})
              </option>
            ))}
          </select>
        </label>
        <fieldset className="grid grid-cols-1 gap-2 sm:grid-cols-2">
          <legend className="text-sm font-medium">Targets in minutes (empty: not tracked)</legend>
          {PRIORITIES.map((priority) =>
            (["first_response_minutes", "resolution_minutes"] as const).map((metric) => {
              const key = `targets.${priority}.${metric}`;
              return (
                <Field
                  key={key}
                  label={`${priority[0]?.toUpperCase()}${priority.slice(1)}: ${metric === "first_response_minutes" ? "first response" : "resolution"}`}
                  inputMode="numeric"
                  value={minutes[key] ?? ""}
                  onChange={(e) => setMinutes({ ...minutes, [key]: e.target.value })}
                  error={fields[key]}
                />
              );
            }),
          )}
        </fieldset>
        {targetsError && (
          <p role="alert" className="text-sm text-red-700">
            {targetsError}
          </p>
        )}
        <Button type="submit" disabled={create.isPending} className="self-start">
          Add policy
        </Button>
        {create.isError && Object.keys(fields).length === 0 && <Problem error={create.error} />}
      </form>
    </section>
  );
}
