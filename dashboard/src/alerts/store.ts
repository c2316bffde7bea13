// Active alerts, kept current from two sources: the periodic `GET /api/alerts` and the live
// `alert` events. It also decides which alerts deserve a toast: one that starts firing while the
// page is open (once per firing episode), not the ones already firing when the page loaded, and
// not silenced ones.

import { severityRank, type Alert } from "./model";

export class AlertStore {
  private readonly alerts = new Map<string, Alert>();
  /** fingerprint + start of each firing episode already announced. */
  private readonly announced = new Set<string>();
  private loaded = false;

  /**
   * Replaces the active set with the API's list. Returns the alerts that are newly firing since
   * the last list or event (none on the very first load: those were firing before we looked).
   */
  replaceActive(alerts: readonly Alert[]): Alert[] {
    const fresh: Alert[] = [];
    const firstLoad = !this.loaded;
    this.alerts.clear();
    for (const alert of alerts) {
      if (alert.state === "resolved") continue;
      this.alerts.set(alert.fingerprint, alert);
      if (this.claimAnnouncement(alert) && !firstLoad) fresh.push(alert);
    }
    this.loaded = true;
    return fresh;
  }

  /**
   * Applies one transition; returns true when it should be announced: a new firing episode, or an
   * escalation to a higher severity. Acknowledgements and de-escalations update the alert quietly.
   */
  apply(alert: Alert): boolean {
    if (alert.state === "resolved") {
      this.alerts.delete(alert.fingerprint);
      return false;
    }
    const known = this.alerts.get(alert.fingerprint);
    // A transition says little besides what changed: keep what the list told us.
    const merged: Alert =
      known === undefined
        ? alert
        : {
            ...known,
            ...alert,
            startsAt: alert.startsAt ?? known.startsAt,
            // Only transitions that measured something say something new ("acknowledged by …" does not).
            summary: alert.summary !== alert.rule && alert.transition !== "acknowledged" ? alert.summary : known.summary,
            acknowledged: alert.acknowledged || (known.acknowledged && alert.transition !== "firing"),
            acknowledgedBy: alert.acknowledgedBy ?? known.acknowledgedBy,
            // Events do not say whether a silence covers the alert; the list does.
            silenced: known.silenced || alert.silenced,
            unit: alert.unit || known.unit,
            threshold: alert.threshold ?? known.threshold,
          };
    this.alerts.set(alert.fingerprint, merged);
    if (alert.transition === "escalated") {
      return this.claim(`${alert.fingerprint}@escalated@${alert.changedAt ?? ""}`, merged);
    }
    if (alert.transition !== null && alert.transition !== "firing") return false;
    return this.claimAnnouncement(merged);
  }

  /** Marks an alert acknowledged locally, before the next list confirms it. */
  markAcknowledged(fingerprint: string, by: string): void {
    const alert = this.alerts.get(fingerprint);
    if (alert !== undefined) this.alerts.set(fingerprint, { ...alert, acknowledged: true, acknowledgedBy: by });
  }

  get(fingerprint: string): Alert | undefined {
    return this.alerts.get(fingerprint);
  }

  /** Most severe first, then the longest firing. */
  active(): Alert[] {
    return [...this.alerts.values()].sort(
      (a, b) =>
        severityRank(a.severity) - severityRank(b.severity) ||
        (a.startsAt ?? Infinity) - (b.startsAt ?? Infinity) ||
        a.fingerprint.localeCompare(b.fingerprint),
    );
  }

  /** Firing (not pending), unsilenced alerts. */
  firing(): Alert[] {
    return this.active().filter((a) => a.state === "firing" && !a.silenced);
  }

  forService(service: string): Alert[] {
    return this.active().filter((a) => a.service === service);
  }

  /** Severities of each service's firing, unsilenced alerts (for node health). */
  severitiesByService(): Map<string, string[]> {
    const result = new Map<string, string[]>();
    for (const alert of this.firing()) {
      if (alert.service === null) continue;
      const list = result.get(alert.service) ?? [];
      list.push(alert.severity);
      result.set(alert.service, list);
    }
    return result;
  }

  private claimAnnouncement(alert: Alert): boolean {
    return this.claim(`${alert.fingerprint}@${alert.startsAt ?? ""}`, alert);
  }

  private claim(key: string, alert: Alert): boolean {
    if (alert.state !== "firing" || alert.silenced) return false;
    if (this.announced.has(key)) return false;
    this.announced.add(key);
    // Bounded: old episodes are forgotten (oldest first; a Set keeps insertion order).
    if (this.announced.size > 1000) {
      const oldest = this.announced.values().next().value;
      if (oldest !== undefined) this.announced.delete(oldest);
    }
    return true;
  }
}
