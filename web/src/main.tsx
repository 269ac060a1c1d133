import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { BrowserRouter, Navigate, Route, Routes } from "react-router";
import "./index.css";
import { SessionProvider } from "./auth/session";
import { Inbox } from "./pages/Inbox";
import { Triage } from "./pages/Triage";
import { Layout } from "./pages/Layout";
import { SignIn } from "./pages/SignIn";
import { Calendar } from "./calendar/Calendar";
import { ClientDetail, Clients, Contacts, Crm } from "./crm/Crm";
import { Pipeline } from "./crm/Pipeline";
import { Import } from "./crm/Import";
import { ProspectProposals } from "./crm/Proposals";
import { Account, Members, Settings } from "./settings/Settings";
import { Mailboxes, Twilio } from "./settings/Channels";
import { Webhooks } from "./settings/Webhooks";
import { BusinessCalendars, SlaPolicies } from "./settings/Support";
import { AcceptInvitation, ForgotPassword, ResetPassword } from "./pages/AccountLinks";
import { PublicBooking } from "./calendar/PublicBooking";
import { ManageBooking } from "./calendar/ManageBooking";
import { InvoiceDetail } from "./finance/InvoiceDetail";
import { InvoiceForm } from "./finance/InvoiceForm";
import { Aging, Finance, InvoiceList, Summary } from "./finance/Invoices";
import { TicketDetail } from "./tickets/TicketDetail";
import { Tickets } from "./tickets/Tickets";
import { SlaReport } from "./tickets/SlaReport";

const queryClient = new QueryClient({
  defaultOptions: { queries: { retry: 1, staleTime: 5_000 } },
});

const root = document.getElementById("root");
if (root) {
  createRoot(root).render(
    <StrictMode>
      <QueryClientProvider client={queryClient}>
        <SessionProvider>
          <BrowserRouter>
            <Routes>
              <Route path="/sign-in" element={<SignIn />} />
              <Route path="/book/:slug" element={<PublicBooking />} />
              <Route path="/booking/manage" element={<ManageBooking />} />
              <Route path="/accept-invitation" element={<AcceptInvitation />} />
              <Route path="/reset-password" element={<ResetPassword />} />
              <Route path="/forgot-password" element={<ForgotPassword />} />
              <Route element={<Layout />}>
                <Route path="/inbox" element={<Inbox />} />
                <Route path="/inbox/:id" element={<Inbox />} />
                <Route path="/triage" element={<Triage />} />
                <Route path="/tickets" element={<Tickets />} />
                <Route path="/tickets/reports" element={<SlaReport />} />
                <Route path="/tickets/:id" element={<TicketDetail />} />
                <Route path="/calendar" element={<Calendar />} />
                <Route path="/settings" element={<Settings />}>
                  <Route index element={<Members />} />
                  <Route path="account" element={<Account />} />
                  <Route path="mailboxes" element={<Mailboxes />} />
                  <Route path="twilio" element={<Twilio />} />
                  <Route path="webhooks" element={<Webhooks />} />
                  <Route path="business-calendars" element={<BusinessCalendars />} />
                  <Route path="sla-policies" element={<SlaPolicies />} />
                </Route>
                <Route path="/crm" element={<Crm />}>
                  <Route index element={<Clients />} />
                  <Route path="clients/:id" element={<ClientDetail />} />
                  <Route path="contacts" element={<Contacts />} />
                  <Route path="pipeline" element={<Pipeline />} />
                  <Route path="import" element={<Import />} />
                  <Route path="prospects/:id" element={<ProspectProposals />} />
                </Route>
                <Route path="/finance" element={<Finance />}>
                  <Route index element={<InvoiceList />} />
                  <Route path="aging" element={<Aging />} />
                  <Route path="summary" element={<Summary />} />
                  <Route path="invoices/new" element={<InvoiceForm />} />
                  <Route path="invoices/:id" element={<InvoiceDetail />} />
                </Route>
              </Route>
              <Route path="*" element={<Navigate to="/inbox" replace />} />
            </Routes>
          </BrowserRouter>
        </SessionProvider>
      </QueryClientProvider>
    </StrictMode>,
  );
}
