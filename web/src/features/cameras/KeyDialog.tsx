import { Button } from "@/components/ui/button";
import { SecretLine } from "@/components/ui/copy";
import { Dialog } from "@/components/ui/dialog";
import type { Camera } from "./api";

/** The ingest URLs and stream key right after create or rotate: the only time they are shown. */
export function KeyDialog({ camera, onClose }: { camera: Camera | null; onClose: () => void }) {
  return (
    <Dialog
      open={camera !== null}
      onOpenChange={(o) => (o ? undefined : onClose())}
      title={camera ? `Publish to ${camera.name}` : "Stream key"}
      description="Copy these now: the stream key is shown only once. Rotate the key to get a new one."
    >
      {camera ? (
        <div className="space-y-3">
          <SecretLine label="RTMP URL" value={camera.rtmpUrl} />
          <SecretLine label="RTMPS URL" value={camera.rtmpsUrl} />
          {camera.streamKey ? <SecretLine label="Stream key" value={camera.streamKey} /> : null}
          <p className="text-sm text-slate-600 dark:text-slate-400">
            OBS: Settings → Stream → Custom; server is the URL without the last path segment, stream key as above.
          </p>
          <div className="flex justify-end">
            <Button onClick={onClose}>Done</Button>
          </div>
        </div>
      ) : null}
    </Dialog>
  );
}
