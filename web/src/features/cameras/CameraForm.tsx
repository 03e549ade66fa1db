import { useId, useState, type FormEvent } from "react";
import { Button } from "@/components/ui/button";
import { Dialog } from "@/components/ui/dialog";
import { Field, Select } from "@/components/ui/input";
import { errorMessage } from "@/components/ui/state";
import { ApiError, type Schemas } from "@/lib/api";
import { useCameraMutations, type Camera } from "./api";

interface Values {
  name: string;
  serialNumber: string;
  model: string;
  company: string;
  location: string;
  abrProfile: Schemas["AbrProfile"];
}

function initial(c: Camera | null): Values {
  return {
    name: c?.name ?? "",
    serialNumber: c?.serialNumber ?? "",
    model: c?.model ?? "",
    company: c?.company ?? "",
    location: c?.location ?? "",
    abrProfile: c?.abrProfile ?? "off",
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

  const abrId = useId();
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
          abrProfile: values.abrProfile,
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
          abrProfile: values.abrProfile,
        };
        const created = await create.mutateAsync(body);
        onOpenChange(false);
        onCreated?.(created);
      }
    } catch (err) {
      if (err instanceof ApiError) {
        const fields = err.fields;
        if (err.code === "CAMERA_SERIAL_DUPLICATE") fields["serialNumber"] ??= err.message;
        if (err.code === "TRANSCODE_BUDGET_FULL") fields["abrProfile"] ??= err.message;
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
        <div className="space-y-1">
          <label htmlFor={abrId} className="block text-sm font-medium">
            Adaptive bitrate
          </label>
          <Select
            id={abrId}
            name="abrProfile"
            value={values.abrProfile}
            aria-invalid={fieldErrors["abrProfile"] ? true : undefined}
            aria-describedby={`${abrId}-hint${fieldErrors["abrProfile"] ? ` ${abrId}-error` : ""}`}
            onChange={(e) => setValues((v) => ({ ...v, abrProfile: e.target.value === "default" ? "default" : "off" }))}
          >
            <option value="off">Off: the camera&apos;s own stream only</option>
            <option value="default">On: the node&apos;s ladder (720p, 480p, 240p below the camera)</option>
          </Select>
          <p id={`${abrId}-hint`} className="text-xs text-slate-500 dark:text-slate-400">
            Lower renditions for viewers on slow links; each ABR camera takes about a third of a core.
          </p>
          {fieldErrors["abrProfile"] ? (
            <p id={`${abrId}-error`} className="text-sm text-red-600 dark:text-red-400">
              {fieldErrors["abrProfile"]}
            </p>
          ) : null}
        </div>
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
