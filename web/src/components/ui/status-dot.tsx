import type { Schemas } from "@/lib/api";
import { cn } from "@/lib/cn";

type Status = Schemas["StreamStatus"];

const colors: Record<Status, string> = {
  online: "bg-emerald-500",
  connecting: "bg-amber-400",
  offline: "bg-slate-400",
  error: "bg-red-500",
};

/** A coloured dot with the status as text (colour is never the only cue). */
export function StatusDot({ status, className }: { status: Status; className?: string }) {
  return (
    <span className={cn("inline-flex items-center gap-1.5 text-sm", className)}>
      <span className={cn("h-2.5 w-2.5 rounded-full", colors[status])} aria-hidden="true" />
      <span className="capitalize">{status}</span>
    </span>
  );
}
