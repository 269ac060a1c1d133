import { NavLink, Outlet } from "react-router";

export interface Tab {
  to: string;
  label: string;
  /** Active only on exactly this path (the section's index). */
  end?: boolean;
}

/** A section with tabs over its pages (CRM, finance, settings): the tabs, then the page. */
export function TabbedSection({ label, tabs }: { label: string; tabs: Tab[] }) {
  const style = ({ isActive }: { isActive: boolean }) =>
    `px-3 py-1 rounded ${isActive ? "bg-blue-100 text-blue-900" : "text-slate-700 hover:bg-slate-100"}`;
  return (
    <div className="flex h-full flex-col">
      <nav aria-label={label} className="flex gap-1 border-b border-slate-200 bg-white p-2">
        {tabs.map((tab) => (
          <NavLink key={tab.to} to={tab.to} end={tab.end ?? false} className={style}>
            {tab.label}
          </NavLink>
        ))}
      </nav>
      <div className="min-h-0 flex-1 overflow-auto">
        <Outlet />
      </div>
    </div>
  );
}
