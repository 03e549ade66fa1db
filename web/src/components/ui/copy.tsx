import { useState } from "react";
import { Button } from "./button";

/** Copies `value` to the clipboard and says so (for screen readers too). */
export function CopyButton({ value, label }: { value: string; label: string }) {
  const [copied, setCopied] = useState(false);
  return (
    <Button
      variant="secondary"
      size="sm"
      aria-label={`Copy ${label}`}
      onClick={() => {
        void navigator.clipboard?.writeText(value).then(
          () => {
            setCopied(true);
            setTimeout(() => setCopied(false), 1500);
          },
          () => setCopied(false),
        );
      }}
    >
      <span aria-live="polite">{copied ? "Copied" : "Copy"}</span>
    </Button>
  );
}

/** A secret value in monospace with a copy button. */
export function SecretLine({ label, value }: { label: string; value: string }) {
  return (
    <div className="space-y-1">
      <div className="text-sm font-medium">{label}</div>
      <div className="flex items-center gap-2">
        <code className="block min-w-0 flex-1 break-all rounded bg-slate-100 px-2 py-1.5 text-xs dark:bg-slate-800" data-testid={`secret-${label}`}>
          {value}
        </code>
        <CopyButton value={value} label={label} />
      </div>
    </div>
  );
}
