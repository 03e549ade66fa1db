import { keepPreviousData, queryOptions, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { Button } from "@/components/ui/button";
import { Dialog } from "@/components/ui/dialog";
import { Field, Select } from "@/components/ui/input";
import { EmptyState, ErrorState, Spinner, errorMessage } from "@/components/ui/state";
import { useMe } from "@/features/auth/auth";
import { ApiError, type Schemas } from "@/lib/api";
import { api } from "@/lib/client";
import { formatDateTime } from "@/lib/format";

type User = Schemas["UserView"];
type Role = Schemas["Role"];

const ROLES: { value: Role; label: string }[] = [
  { value: "admin", label: "Admin (everything)" },
  { value: "operator", label: "Operator (cameras, recordings, tokens)" },
  { value: "viewer", label: "Viewer (watch only)" },
  { value: "api_only", label: "API only (manages its tokens)" },
];
const PAGE_SIZE = 25;

const usersQuery = (page: number) =>
  queryOptions({
    queryKey: ["users", "list", page],
    queryFn: ({ signal }) => api.get<Schemas["Paged_UserView"]>("/api/v1/users", { signal, query: { page, limit: PAGE_SIZE } }),
    placeholderData: keepPreviousData,
  });

function UserForm({ user, onClose }: { user: User | null; onClose: () => void }) {
  const qc = useQueryClient();
  const [username, setUsername] = useState(user?.username ?? "");
  const [password, setPassword] = useState("");
  const [role, setRole] = useState<Role>(user?.role ?? "viewer");
  const [company, setCompany] = useState(user?.company ?? "");
  const [email, setEmail] = useState(user?.email ?? "");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [formError, setFormError] = useState<string | null>(null);
  const save = useMutation({
    mutationFn: async () => {
      if (user) {
        const body: Schemas["UpdateUser"] = { role, company: company.trim() || null, email: email.trim() || null };
        if (password) body.password = password;
        await api.put<unknown>("/api/v1/users/{id}", { params: { id: user.id }, body });
      } else {
        const body: Schemas["CreateUser"] = { username: username.trim(), password, role };
        if (company.trim()) body.company = company.trim();
        if (email.trim()) body.email = email.trim();
        await api.post<unknown>("/api/v1/users", { body });
      }
    },
    onSuccess: () => qc.invalidateQueries({ queryKey: ["users"] }),
  });

  async function submit(e: FormEvent) {
    e.preventDefault();
    setErrors({});
    setFormError(null);
    try {
      await save.mutateAsync();
      onClose();
    } catch (err) {
      const fields = err instanceof ApiError ? err.fields : {};
      if (err instanceof ApiError && err.code === "USERNAME_DUPLICATE") fields["username"] ??= err.message;
      setErrors(fields);
      if (Object.keys(fields).length === 0) setFormError(errorMessage(err));
    }
  }

  return (
    <Dialog open onOpenChange={(o) => (o ? undefined : onClose())} title={user ? `Edit ${user.username}` : "Add user"}>
      <form onSubmit={submit} className="space-y-3" noValidate>
        {user ? null : (
          <Field label="Username" name="username" required autoComplete="off" value={username} onChange={(e) => setUsername(e.target.value)} error={errors["username"]} />
        )}
        <Field
          label={user ? "New password (empty: unchanged)" : "Password"}
          name="password"
          type="password"
          autoComplete="new-password"
          required={!user}
          value={password}
          onChange={(e) => setPassword(e.target.value)}
          error={errors["password"]}
          hint="12–128 characters, three of lowercase, uppercase, digits and symbols, not containing the username."
        />
        <div className="space-y-1">
          <label htmlFor="user-role" className="block text-sm font-medium">
            Role
          </label>
          <Select id="user-role" value={role} onChange={(e) => setRole(e.target.value as Role)}>
            {ROLES.map((r) => (
              <option key={r.value} value={r.value}>
                {r.label}
              </option>
            ))}
          </Select>
          {errors["role"] ? <p className="text-sm text-red-600 dark:text-red-400">{errors["role"]}</p> : null}
        </div>
        <Field
          label="Company"
          name="company"
          value={company}
          onChange={(e) => setCompany(e.target.value)}
          error={errors["company"]}
          hint="Non-admins see only their company's cameras; without one they see none."
        />
        <Field label="Email" name="email" type="email" value={email} onChange={(e) => setEmail(e.target.value)} error={errors["email"]} />
        {formError ? (
          <p role="alert" className="text-sm text-red-600 dark:text-red-400">
            {formError}
          </p>
        ) : null}
        <div className="flex justify-end gap-2">
          <Button variant="secondary" onClick={onClose}>
            Cancel
          </Button>
          <Button type="submit" disabled={save.isPending}>
            {user ? "Save" : "Create user"}
          </Button>
        </div>
      </form>
    </Dialog>
  );
}

export function UsersPage() {
  const me = useMe();
  const qc = useQueryClient();
  const [page, setPage] = useState(1);
  const users = useQuery(usersQuery(page));
  const [editing, setEditing] = useState<User | null>(null);
  const [creating, setCreating] = useState(false);
  const [deleting, setDeleting] = useState<User | null>(null);
  const [actionError, setActionError] = useState<string | null>(null);
  const update = useMutation({
    mutationFn: ({ id, body }: { id: string; body: Schemas["UpdateUser"] }) => api.put<unknown>("/api/v1/users/{id}", { params: { id }, body }),
    onSuccess: () => qc.invalidateQueries({ queryKey: ["users"] }),
    onError: (e) => setActionError(errorMessage(e)),
  });
  const remove = useMutation({
    mutationFn: (id: string) => api.delete<unknown>("/api/v1/users/{id}", { params: { id } }),
    onSuccess: () => {
      setDeleting(null);
      return qc.invalidateQueries({ queryKey: ["users"] });
    },
  });
  const pages = users.data?.pagination.totalPages ?? 1;

  return (
    <section aria-labelledby="users-title" className="space-y-4">
      <div className="flex items-center justify-between">
        <h1 id="users-title" className="text-2xl font-semibold">
          Users
        </h1>
        <Button onClick={() => setCreating(true)}>Add user</Button>
      </div>
      {actionError ? (
        <p role="alert" className="rounded border border-red-300 bg-red-50 p-2 text-sm text-red-800 dark:border-red-900 dark:bg-red-950 dark:text-red-200">
          {actionError}
        </p>
      ) : null}
      {users.isPending ? (
        <Spinner label="Loading users" />
      ) : users.isError ? (
        <ErrorState error={users.error} onRetry={() => void users.refetch()} />
      ) : users.data.data.length === 0 ? (
        <EmptyState title="No users" />
      ) : (
        <div className="overflow-x-auto rounded-lg border border-slate-200 bg-white dark:border-slate-800 dark:bg-slate-900">
          <table className="min-w-full text-sm">
            <thead className="border-b border-slate-200 text-left text-slate-600 dark:border-slate-800 dark:text-slate-300">
              <tr>
                <th scope="col" className="px-3 py-2 font-medium">Username</th>
                <th scope="col" className="px-3 py-2 font-medium">Role</th>
                <th scope="col" className="px-3 py-2 font-medium">Company</th>
                <th scope="col" className="px-3 py-2 font-medium">Active</th>
                <th scope="col" className="px-3 py-2 font-medium">Last login</th>
                <th scope="col" className="px-3 py-2 text-right font-medium">Actions</th>
              </tr>
            </thead>
            <tbody>
              {users.data.data.map((u) => {
                const self = u.id === me.data?.user.id;
                return (
                  <tr key={u.id} className="border-b border-slate-100 last:border-0 dark:border-slate-800" data-testid="user-row">
                    <td className="px-3 py-2 font-medium">
                      {u.username}
                      {self ? <span className="ml-1 text-slate-600 dark:text-slate-400">(you)</span> : null}
                    </td>
                    <td className="px-3 py-2">{u.role}</td>
                    <td className="px-3 py-2">{u.company ?? "—"}</td>
                    <td className="px-3 py-2">
                      <input
                        type="checkbox"
                        aria-label={`${u.username} active`}
                        checked={u.isActive}
                        disabled={self}
                        onChange={(e) => {
                          setActionError(null);
                          update.mutate({ id: u.id, body: { isActive: e.target.checked } });
                        }}
                      />
                    </td>
                    <td className="px-3 py-2">{formatDateTime(u.lastLoginAt)}</td>
                    <td className="whitespace-nowrap px-3 py-2 text-right">
                      <Button variant="ghost" size="sm" aria-label={`Edit ${u.username}`} onClick={() => setEditing(u)}>
                        Edit
                      </Button>
                      {self ? null : (
                        <Button variant="ghost" size="sm" className="text-red-600 dark:text-red-400" aria-label={`Delete ${u.username}`} onClick={() => setDeleting(u)}>
                          Delete
                        </Button>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {users.data && pages > 1 ? (
        <nav aria-label="Pages" className="flex items-center justify-end gap-2 text-sm">
          <Button variant="secondary" size="sm" disabled={page <= 1} onClick={() => setPage((p) => p - 1)}>
            Previous
          </Button>
          <span>
            Page {page} of {pages}
          </span>
          <Button variant="secondary" size="sm" disabled={page >= pages} onClick={() => setPage((p) => p + 1)}>
            Next
          </Button>
        </nav>
      ) : null}
      {creating ? <UserForm user={null} onClose={() => setCreating(false)} /> : null}
      {editing ? <UserForm key={editing.id} user={editing} onClose={() => setEditing(null)} /> : null}
      <Dialog
        open={deleting !== null}
        onOpenChange={(o) => (o ? undefined : setDeleting(null))}
        title={`Delete ${deleting?.username ?? "user"}?`}
        description="The user can no longer log in. This cannot be undone."
      >
        {remove.isError ? (
          <p role="alert" className="mb-2 text-sm text-red-600 dark:text-red-400">
            {errorMessage(remove.error)}
          </p>
        ) : null}
        <div className="flex justify-end gap-2">
          <Button variant="secondary" onClick={() => setDeleting(null)}>
            Cancel
          </Button>
          <Button variant="danger" disabled={remove.isPending} onClick={() => deleting && remove.mutate(deleting.id)}>
            Delete
          </Button>
        </div>
      </Dialog>
    </section>
  );
}
