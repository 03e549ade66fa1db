import { queryOptions, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { Button } from "@/components/ui/button";
import { SecretLine } from "@/components/ui/copy";
import { Dialog } from "@/components/ui/dialog";
import { Field } from "@/components/ui/input";
import { EmptyState, ErrorState, Spinner, errorMessage } from "@/components/ui/state";
import { useMe } from "@/features/auth/auth";
import { ApiError, type Schemas } from "@/lib/api";
import { api } from "@/lib/client";
import { formatDateTime } from "@/lib/format";

type Permission = Schemas["Permission"];
type Token = Schemas["TokenView"];

const ALL_PERMISSIONS: Permission[] = [
  "cameras:read",
  "cameras:write",
  "streams:play",
  "analytics:read",
  "recordings:read",
  "recordings:delete",
  "users:manage",
  "audit:read",
  "retention:manage",
];

const tokensQuery = queryOptions({
  queryKey: ["tokens", "list"],
  queryFn: ({ signal }) => api.get<Schemas["Envelope_Vec_TokenView"]>("/api/v1/tokens", { signal }).then((r) => r.data),
});

function CreateTokenDialog({ open, onOpenChange, grantable }: { open: boolean; onOpenChange: (o: boolean) => void; grantable: Permission[] }) {
  const qc = useQueryClient();
  const [name, setName] = useState("");
  const [perms, setPerms] = useState<Permission[]>(["cameras:read"]);
  const [rateLimit, setRateLimit] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [created, setCreated] = useState<Schemas["CreatedToken"] | null>(null);
  const create = useMutation({
    mutationFn: (body: Schemas["CreateToken"]) => api.post<Schemas["Envelope_CreatedToken"]>("/api/v1/tokens", { body }).then((r) => r.data),
    onSuccess: () => qc.invalidateQueries({ queryKey: ["tokens"] }),
  });

  async function submit(e: FormEvent) {
    e.preventDefault();
    setErrors({});
    setFormError(null);
    const body: Schemas["CreateToken"] = { name: name.trim(), permissions: perms };
    if (rateLimit.trim()) body.rateLimit = Number(rateLimit);
    try {
      setCreated(await create.mutateAsync(body));
    } catch (err) {
      const fields = err instanceof ApiError ? err.fields : {};
      setErrors(fields);
      if (Object.keys(fields).length === 0) setFormError(errorMessage(err));
    }
  }

  return (
    <Dialog open={open} onOpenChange={onOpenChange} title={created ? "Token created" : "New API token"}>
      {created ? (
        <div className="space-y-3">
          <p className="text-sm">Copy the token now: it is shown only once.</p>
          <SecretLine label="Token" value={created.tokenSecret} />
          <div className="flex justify-end">
            <Button onClick={() => onOpenChange(false)}>Done</Button>
          </div>
        </div>
      ) : (
        <form onSubmit={submit} className="space-y-3" noValidate>
          <Field label="Name" name="name" required value={name} onChange={(e) => setName(e.target.value)} error={errors["name"]} />
          <fieldset>
            <legend className="text-sm font-medium">Permissions</legend>
            <div className="mt-1 grid grid-cols-2 gap-1">
              {grantable.map((p) => (
                <label key={p} className="flex items-center gap-2 text-sm">
                  <input
                    type="checkbox"
                    checked={perms.includes(p)}
                    onChange={(e) => setPerms((cur) => (e.target.checked ? [...cur, p] : cur.filter((x) => x !== p)))}
                  />
                  <code>{p}</code>
                </label>
              ))}
            </div>
            {errors["permissions"] ? <p className="text-sm text-red-600 dark:text-red-400">{errors["permissions"]}</p> : null}
          </fieldset>
          <Field
            label="Rate limit (requests per hour)"
            name="rateLimit"
            type="number"
            min={1}
            value={rateLimit}
            onChange={(e) => setRateLimit(e.target.value)}
            error={errors["rateLimit"]}
            hint="Empty: the server's default."
          />
          {formError ? (
            <p role="alert" className="text-sm text-red-600 dark:text-red-400">
              {formError}
            </p>
          ) : null}
          <div className="flex justify-end gap-2">
            <Button variant="secondary" onClick={() => onOpenChange(false)}>
              Cancel
            </Button>
            <Button type="submit" disabled={create.isPending || perms.length === 0}>
              Create token
            </Button>
          </div>
        </form>
      )}
    </Dialog>
  );
}

export function TokensPage() {
  const me = useMe();
  const qc = useQueryClient();
  const tokens = useQuery(tokensQuery);
  const [creating, setCreating] = useState(false);
  const [revoking, setRevoking] = useState<Token | null>(null);
  const revoke = useMutation({
    mutationFn: (id: string) => api.delete<unknown>("/api/v1/tokens/{id}", { params: { id } }),
    onSuccess: () => qc.invalidateQueries({ queryKey: ["tokens"] }),
  });
  // A token can carry what the creator's own role grants (the server caps it anyway).
  const grantable = ALL_PERMISSIONS.filter((p) => me.can(p));

  return (
    <section aria-labelledby="tokens-title" className="space-y-4">
      <div className="flex items-center justify-between">
        <h1 id="tokens-title" className="text-2xl font-semibold">
          API tokens
        </h1>
        <Button onClick={() => setCreating(true)}>New token</Button>
      </div>
      {tokens.isPending ? (
        <Spinner label="Loading tokens" />
      ) : tokens.isError ? (
        <ErrorState error={tokens.error} onRetry={() => void tokens.refetch()} />
      ) : tokens.data.length === 0 ? (
        <EmptyState title="No API tokens">Tokens let scripts and integrations call the API.</EmptyState>
      ) : (
        <div className="overflow-x-auto rounded-lg border border-slate-200 bg-white dark:border-slate-800 dark:bg-slate-900">
          <table className="min-w-full text-sm">
            <thead className="border-b border-slate-200 text-left text-slate-600 dark:border-slate-800 dark:text-slate-300">
              <tr>
                <th scope="col" className="px-3 py-2 font-medium">Name</th>
                <th scope="col" className="px-3 py-2 font-medium">Prefix</th>
                <th scope="col" className="px-3 py-2 font-medium">Permissions</th>
                <th scope="col" className="px-3 py-2 font-medium">Rate / h</th>
                <th scope="col" className="px-3 py-2 font-medium">Last used</th>
                <th scope="col" className="px-3 py-2 font-medium">State</th>
                <th scope="col" className="px-3 py-2 text-right font-medium">Actions</th>
              </tr>
            </thead>
            <tbody>
              {tokens.data.map((t) => (
                <tr key={t.id} className="border-b border-slate-100 last:border-0 dark:border-slate-800" data-testid="token-row">
                  <td className="px-3 py-2 font-medium">{t.name}</td>
                  <td className="px-3 py-2 font-mono text-xs">{t.prefix}…</td>
                  <td className="px-3 py-2 text-xs">{t.permissions.join(", ")}</td>
                  <td className="px-3 py-2 tabular-nums">{t.rateLimit}</td>
                  <td className="px-3 py-2">{formatDateTime(t.lastUsedAt)}</td>
                  <td className="px-3 py-2">{t.revokedAt ? `Revoked ${formatDateTime(t.revokedAt)}` : t.expiresAt ? `Expires ${formatDateTime(t.expiresAt)}` : "Active"}</td>
                  <td className="px-3 py-2 text-right">
                    {t.revokedAt ? null : (
                      <Button variant="ghost" size="sm" className="text-red-600 dark:text-red-400" onClick={() => setRevoking(t)} aria-label={`Revoke ${t.name}`}>
                        Revoke
                      </Button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {creating ? <CreateTokenDialog open onOpenChange={setCreating} grantable={grantable} /> : null}
      <Dialog
        open={revoking !== null}
        onOpenChange={(o) => (o ? undefined : setRevoking(null))}
        title={`Revoke ${revoking?.name ?? "token"}?`}
        description="Requests with this token are refused from now on."
      >
        {revoke.isError ? (
          <p role="alert" className="mb-2 text-sm text-red-600 dark:text-red-400">
            {errorMessage(revoke.error)}
          </p>
        ) : null}
        <div className="flex justify-end gap-2">
          <Button variant="secondary" onClick={() => setRevoking(null)}>
            Cancel
          </Button>
          <Button
            variant="danger"
            disabled={revoke.isPending}
            onClick={() => revoking && revoke.mutate(revoking.id, { onSuccess: () => setRevoking(null) })}
          >
            Revoke
          </Button>
        </div>
      </Dialog>
    </section>
  );
}
