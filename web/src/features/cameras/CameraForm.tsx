import { useState, type FormEvent } from "react";
import { Button } from "@/components/ui/button";
import { Dialog } from "@/components/ui/dialog";
import { Field } from "@/components/ui/input";
import { errorMessage } from "@/components/ui/state";
import { ApiError, type Schemas } from "@/lib/api";
import { useCameraMutations, type Camera } from "./api";

interface Values {
  name: string;
  serialNumber: string;
  model: string;
  company: string;
  location: string;
}

function initial(c: Camera | null): Values {
  return {
    name: c?.name ?? "",
    serialNumber: c?.serialNumber ?? "",
    model: c?.model ?? "",
    company: c?.company ?? "",
    location: c?.location ?? "",
  };
}

/** Empty optional text is "not set": absent on create, `null` (clear) on edit. */
function opt(v: string, edit: boolean): string | null | undefined {
  const t = v.trim();
  return t ? t : edit ? null : undefined;
}

export interface CameraFormProps {
  /** The camera to edit; null to create one. */
  camera: Camera | null;
  open: boolean;
  onOpenChange: (open: boolean) => void;
  /** After a create: the new camera, with its stream key (shown once). */
  onCreated?: (camera: Camera) => void;
}

export function CameraForm({ camera, open, onOpenChange, onCreated }: CameraFormProps) {
  const { create, update } = useCameraMutations();
  const [values, setValues] = useState<Values>(() => initial(camera));
  const [fieldErrors, setFieldErrors] = useState<Record<string, string>>({});
  const [formError, setFormError] = useState<string | null>(null);
  const edit = camera !== null;
  const busy = create.isPending || update.isPending;

  const set = (k: keyof Values) => (e: { target: { value: string } }) => setValues((v) => ({ ...v, [k]: e.target.value }));

  async function submit(e: FormEvent) {
    e.preventDefault();
    setFieldErrors({});
    setFormError(null);
    try {
      if (camera) {
        const body: Schemas["UpdateCamera"] = {
          name: values.name.trim(),
          serialNumber: values.serialNumber.trim(),
          model: opt(values.model, true),
          company: opt(values.company, true),
          location: opt(values.location, true),
        };
        await update.mutateAsync({ id: camera.id, body });
        onOpenChange(false);
      } else {
        const body: Schemas["CreateCamera"] = {
          name: values.name.trim(),
          serialNumber: values.serialNumber.trim(),
          model: opt(values.model, false),
          company: opt(values.company, false),
          location: opt(values.location, false),
        };
        const created = await create.mutateAsync(body);
        onOpenChange(false);
        onCreated?.(created);
      }
    } catch (err) {
      if (err instanceof ApiError) {
        const fields = err.fields;
        if (err.code === "CAMERA_SERIAL_DUPLICATE") fields["serialNumber"] ??= err.message;
        setFieldErrors(fields);
        if (Object.keys(fields).length === 0) setFormError(err.message);
      } else {
        setFormError(errorMessage(err));
      }
    }
  }

  return (
    <Dialog open={open} onOpenChange={onOpenChange} title={edit ? `Edit ${camera.name}` : "Add camera"}>
      <form onSubmit={submit} className="space-y-3" noValidate>
        <Field label="Name" name="name" required value={values.name} onChange={set("name")} error={fieldErrors["name"]} />
        <Field
          label="Serial number"
          name="serialNumber"
          required
          value={values.serialNumber}
          onChange={set("serialNumber")}
          error={fieldErrors["serialNumber"]}
        />
        <Field label="Model" name="model" value={values.model} onChange={set("model")} error={fieldErrors["model"]} />
        <Field label="Company" name="company" value={values.company} onChange={set("company")} error={fieldErrors["company"]} />
        <Field label="Location" name="location" value={values.location} onChange={set("location")} error={fieldErrors["location"]} />
        {formError ? (
          <p role="alert" className="text-sm text-red-600 dark:text-red-400">
            {formError}
          </p>
        ) : null}
        <div className="flex justify-end gap-2 pt-2">
          <Button variant="secondary" onClick={() => onOpenChange(false)}>
            Cancel
          </Button>
          <Button type="submit" disabled={busy}>
            {busy ? "Saving…" : edit ? "Save" : "Create camera"}
          </Button>
        </div>
      </form>
    </Dialog>
  );
}
