// The local camera and microphone: the preview stream, the choice of devices, mute and camera
// off. One MediaStream holds at most one audio and one video track for the whole call; switching
// a device swaps the track inside it and tells the listeners, which `replaceTrack` it into every
// peer connection, so no renegotiation is needed. Mute and camera off set `track.enabled`: the
// connections keep sending (silence, black frames), the recording stays continuous, and turning
// them back on is instant.

const VIDEO = { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 24, max: 30 } };

export class LocalMedia {
  constructor() {
    this.stream = new MediaStream();
    this.audioOn = true;
    this.videoOn = true;
    /** Why a device could not be opened, for the page to show; null when all is well. */
    this.problem = null;
    this.listeners = new Set();
  }

  /** Opens the devices (`cameraId`/`micId` preferred when still present). */
  async start({ cameraId, micId, audioOn = true, videoOn = true } = {}) {
    this.audioOn = audioOn;
    this.videoOn = videoOn;
    this.problem = null;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      this.problem = 'This browser cannot use a camera or microphone here (a secure connection is needed).';
      return;
    }
    const audio = micId ? { deviceId: { ideal: micId } } : true;
    const video = cameraId ? { ...VIDEO, deviceId: { ideal: cameraId } } : VIDEO;
    let stream = null;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio, video });
    } catch (error) {
      // One device may be missing or refused: try each alone before giving up.
      const [mic, camera] = await Promise.allSettled([
        navigator.mediaDevices.getUserMedia({ audio }),
        navigator.mediaDevices.getUserMedia({ video }),
      ]);
      stream = new MediaStream();
      for (const result of [mic, camera]) {
        if (result.status === 'fulfilled') result.value.getTracks().forEach((t) => stream.addTrack(t));
      }
      if (!stream.getTracks().length) this.problem = describe(error);
      else if (mic.status !== 'fulfilled') this.problem = 'No microphone could be opened; the others will not hear you.';
      else if (camera.status !== 'fulfilled') this.problem = 'No camera could be opened; the others will not see you.';
    }
    for (const track of stream.getTracks()) this.put(track);
  }

  /** The current track of `kind` ('audio' or 'video'), or null. */
  track(kind) {
    return this.stream.getTracks().find((t) => t.kind === kind) || null;
  }

  /** The selected device id of `kind`, if known. */
  deviceId(kind) {
    const track = this.track(kind);
    return track ? track.getSettings().deviceId || null : null;
  }

  /** {audio: [MediaDeviceInfo], video: [...]}; labels are empty until access was granted. */
  async devices() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return { audio: [], video: [] };
    const all = await navigator.mediaDevices.enumerateDevices();
    return {
      audio: all.filter((d) => d.kind === 'audioinput' && d.deviceId),
      video: all.filter((d) => d.kind === 'videoinput' && d.deviceId),
    };
  }

  /** Switches `kind` to the device `deviceId`; the listeners put the new track into the calls. */
  async useDevice(kind, deviceId) {
    const constraints = kind === 'audio'
      ? { audio: { deviceId: { exact: deviceId } } }
      : { video: { ...VIDEO, deviceId: { exact: deviceId } } };
    // Some systems cannot open a camera twice: release the old one first.
    const old = this.track(kind);
    if (old && kind === 'video') old.stop();
    let fresh;
    try {
      fresh = (await navigator.mediaDevices.getUserMedia(constraints)).getTracks()[0];
    } catch (error) {
      if (old && kind === 'video') {
        // Reopen what we had, so the call does not lose its picture.
        try { fresh = (await navigator.mediaDevices.getUserMedia({ video: VIDEO })).getTracks()[0]; } catch { /* none */ }
        if (fresh) this.put(fresh);
      }
      throw new Error(describe(error));
    }
    this.put(fresh);
  }

  setAudio(on) {
    this.audioOn = on;
    const track = this.track('audio');
    if (track) track.enabled = on;
  }

  setVideo(on) {
    this.videoOn = on;
    const track = this.track('video');
    if (track) track.enabled = on;
  }

  /** Calls `listener(kind, track)` whenever a track is added or replaced. */
  onTrack(listener) {
    this.listeners.add(listener);
  }

  stop() {
    for (const track of this.stream.getTracks()) {
      track.stop();
      this.stream.removeTrack(track);
    }
  }

  put(track) {
    const old = this.track(track.kind);
    if (old === track) return;
    if (old) {
      old.stop();
      this.stream.removeTrack(old);
    }
    track.enabled = track.kind === 'audio' ? this.audioOn : this.videoOn;
    this.stream.addTrack(track);
    for (const listener of this.listeners) listener(track.kind, track);
  }
}

function describe(error) {
  switch (error && error.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'Camera and microphone access was refused. Allow it in the browser’s site settings to be seen and heard.';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'No camera or microphone was found.';
    case 'NotReadableError':
    case 'AbortError':
      return 'The camera or microphone is in use by another application.';
    default:
      return 'The camera or microphone could not be opened.';
  }
}
