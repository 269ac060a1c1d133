/** What went wrong, in the error envelope's words, announced to screen readers. */
export function Problem({ error, className = "" }: { error: Error | null | undefined; className?: string }) {
  if (!error) return null;
  return (
    <p role="alert" className={`text-red-700 ${className}`}>
      {error.message}
    </p>
  );
}
