// The Kubernetes base (deploy/kubernetes), proven without a cluster: every manifest validates
// against the Kubernetes (and Prometheus Operator) schemas, the kustomization resolves as kustomize
// would resolve it, the references between objects agree, and what the manifests assume about the
// gateway (probe routes, port, settings, drain bound, alert rules) is what the gateway does.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { CONFIG_VARIABLES, ConfigError, loadConfig } from '../../services/gateway/src/config.js';
import { ROOT } from '../helpers/dashboard.js';
import { startGateway } from '../helpers/gateway.js';
import { waitUntil } from '../helpers/wait.js';

const BASE = 'deploy/kubernetes/';
const read = (path: string): string => readFileSync(`${ROOT}${path}`, 'utf8');

type Labels = Record<string, string>;
interface Selector {
  matchLabels?: Labels;
  matchExpressions?: unknown[];
}
interface HttpProbe {
  httpGet?: { path?: string; port?: number | string };
}
interface Container {
  name: string;
  image: string;
  ports?: { name?: string; containerPort: number }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  env?: { name: string; value?: string }[];
  readinessProbe?: HttpProbe;
  livenessProbe?: HttpProbe;
  lifecycle?: { preStop?: { sleep?: { seconds: number }; exec?: unknown } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: {
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    runAsNonRoot?: boolean;
    capabilities?: { drop?: string[]; add?: string[] };
  };
}
interface PodSpec {
  automountServiceAccountToken?: boolean;
  terminationGracePeriodSeconds?: number;
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; seccompProfile?: { type: string } };
  topologySpreadConstraints?: { labelSelector?: Selector }[];
  containers: Container[];
}
interface NetworkPolicyPort {
  port?: number | string;
  protocol?: string;
}
/** The fields this test reads, by kind; the schemas check the rest. */
interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Labels };
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  spec?: {
    replicas?: number;
    selector?: Selector & Labels;
    template?: { metadata: { labels: Labels }; spec: PodSpec };
    clusterIP?: string;
    ports?: { name?: string; port: number; targetPort?: number | string }[];
    maxUnavailable?: number | string;
    minReplicas?: number;
    scaleTargetRef?: { apiVersion: string; kind: string; name: string };
    metrics?: { type: string; resource?: { name: string } }[];
    podSelector?: Selector;
    policyTypes?: string[];
    ingress?: { ports?: NetworkPolicyPort[] }[];
    egress?: { ports?: NetworkPolicyPort[] }[];
    jobLabel?: string;
    endpoints?: { port?: string; path?: string }[];
    groups?: unknown[];
  };
  /** Where it came from, for messages. */
  file: string;
}

interface ModelClass {
  new (data: unknown): { validate(): void };
  readonly apiVersion: string;
  readonly kind: string;
}

/** The kubernetes-models class for an apiVersion and kind; rejects one it has no schema for. */
async function modelFor(apiVersion: string, kind: string): Promise<ModelClass> {
  assert.match(kind, /^[A-Z][A-Za-z]+$/, `kind ${JSON.stringify(kind)}`);
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/', 2) : ['', apiVersion];
  const pkg = group === 'monitoring.coreos.com' ? '@kubernetes-models/prometheus-operator' : 'kubernetes-models';
  const path = `${pkg}/${group === '' ? '' : `${group}/`}${version}/${kind}`;
  let module: Record<string, ModelClass | undefined>;
  try {
    module = (await import(path)) as Record<string, ModelClass | undefined>;
  } catch (err) {
    throw new Error(`no schema for ${apiVersion} ${kind} (${path}): ${(err as Error).message}`);
  }
  const model = module[kind];
  if (model === undefined || model.apiVersion !== apiVersion || model.kind !== kind) {
    throw new Error(`${path} does not export the model of ${apiVersion} ${kind}`);
  }
  return model;
}

/** The manifest as kustomize emits it, without the test's own bookkeeping. */
function bare(manifest: Manifest): Omit<Manifest, 'file'> {
  const copy: Partial<Manifest> = structuredClone(manifest);
  delete copy.file;
  return copy as Omit<Manifest, 'file'>;
}

async function validate(manifest: Omit<Manifest, 'file'>): Promise<void> {
  const Model = await modelFor(manifest.apiVersion, manifest.kind);
  new Model(manifest).validate();
}

interface Kustomization {
  apiVersion: string;
  kind: string;
  resources: string[];
  images: { name: string; newName?: string; newTag?: string }[];
}

function kustomization(): Kustomization {
  const k = parse(read(`${BASE}kustomization.yaml`)) as Kustomization;
  // resolve() below applies exactly these fields; anything else kustomize would do is not simulated.
  assert.deepEqual(
    Object.keys(k).sort(),
    ['apiVersion', 'images', 'kind', 'resources'],
    'kustomization.yaml uses only the fields this test resolves (teach resolve() any new one)',
  );
  assert.equal(k.apiVersion, 'kustomize.config.k8s.io/v1beta1');
  assert.equal(k.kind, 'Kustomization');
  return k;
}

/** What `kustomize build deploy/kubernetes` emits: every listed file's documents, images set. */
function resolve(): Manifest[] {
  const k = kustomization();
  const out: Manifest[] = [];
  for (const file of k.resources) {
    assert.ok(existsSync(`${ROOT}${BASE}${file}`), `kustomization.yaml lists ${file}, which does not exist`);
    for (const doc of parseAllDocuments(read(`${BASE}${file}`))) {
      assert.deepEqual(doc.errors, [], `${file} parses`);
      const manifest = doc.toJS() as Manifest | null;
      if (manifest === null) continue;
      out.push({ ...manifest, file });
    }
  }
  for (const m of out) {
    for (const c of m.spec?.template?.spec.containers ?? []) {
      const [name, tag] = c.image.split(':');
      const image = k.images.find((i) => i.name === name);
      if (image === undefined) continue;
      c.image = `${image.newName ?? name}:${image.newTag ?? tag ?? 'latest'}`;
    }
  }
  return out;
}

function one(manifests: Manifest[], kind: string, name?: string): Manifest {
  const found = manifests.filter((m) => m.kind === kind && (name === undefined || m.metadata.name === name));
  assert.equal(found.length, 1, `exactly one ${kind}${name === undefined ? '' : ` named ${name}`} in the base`);
  return found[0]!;
}

/** Kubernetes' label-selector match, for the matchLabels form the base uses. */
function selects(selector: Selector | Labels | undefined, labels: Labels | undefined): boolean {
  assert.ok(selector !== undefined, 'a selector is set');
  assert.equal((selector as Selector).matchExpressions, undefined, 'selectors use matchLabels only (what this test resolves)');
  const wanted = (selector as Selector).matchLabels ?? (selector as Labels);
  assert.ok(Object.keys(wanted).length > 0, 'an empty selector would select every pod');
  return Object.entries(wanted).every(([k, v]) => labels?.[k] === v);
}

function gatewayParts(manifests: Manifest[]): { deployment: Manifest; pod: PodSpec; podLabels: Labels; container: Container } {
  const deployment = one(manifests, 'Deployment', 'hubcast-gateway');
  const pod = deployment.spec!.template!.spec;
  assert.equal(pod.containers.length, 1, 'one container: the gateway');
  return { deployment, pod, podLabels: deployment.spec!.template!.metadata.labels, container: pod.containers[0]! };
}

/** A container port, by number or name, as a probe, Service or NetworkPolicy refers to it. */
function containerPort(container: Container, ref: number | string | undefined): number {
  const port = container.ports?.find((p) => p.name === ref || p.containerPort === ref);
  assert.ok(port, `port ${String(ref)} is one of the gateway container's ports`);
  return port.containerPort;
}

/** The gateway's environment in the pod: ConfigMap and Secret (envFrom), then env. */
function podEnv(manifests: Manifest[], container: Container): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of container.envFrom ?? []) {
    if (from.configMapRef) Object.assign(env, one(manifests, 'ConfigMap', from.configMapRef.name).data);
    if (from.secretRef) Object.assign(env, one(manifests, 'Secret', from.secretRef.name).stringData);
  }
  for (const e of container.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
  return env;
}

/** The variables a gateway reads, from its environment: the Kubernetes-only ones left out. */
function gatewaySettings(env: Record<string, string>): Record<string, string> {
  const known = new Set<string>(CONFIG_VARIABLES);
  return Object.fromEntries(Object.entries(env).filter(([k]) => known.has(k)));
}

/** Secret values of the length the gateway accepts, standing in for the operator's real ones. */
function withRealSecrets(env: Record<string, string>): Record<string, string> {
  const out = { ...env };
  for (const name of ['AUTH_JWT_SECRET', 'PUBLISH_API_KEY']) if (name in out) out[name] = `${name.toLowerCase()}-`.padEnd(40, 'x');
  return out;
}

/** main.ts's slack beyond DRAIN_MS + CLOSE_TIMEOUT_MS; main.ts runs on import, so read its source. */
function shutdownSlackMs(): number {
  const match = /const SHUTDOWN_SLACK_MS = ([\d_]+);/.exec(read('services/gateway/src/main.ts'));
  assert.ok(match, 'services/gateway/src/main.ts defines SHUTDOWN_SLACK_MS');
  return Number(match[1]!.replaceAll('_', ''));
}

/** The ```yaml blocks of docs/operations.md that hold a manifest of this kind. */
function documentedManifests(kind: string): Omit<Manifest, 'file'>[] {
  const blocks = [...read('docs/operations.md').matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => parse(m[1]!) as unknown);
  return blocks.filter((b): b is Manifest => typeof b === 'object' && b !== null && (b as Manifest).kind === kind);
}

describe('kustomize base deploy/kubernetes', () => {
  test('the kustomization lists every manifest in the folder, and every file it lists exists', () => {
    const listed = kustomization().resources;
    const files = readdirSync(`${ROOT}${BASE}`).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml');
    assert.deepEqual([...listed].sort(), files.sort(), 'kustomization.yaml resources = the manifest files beside it');
    assert.equal(new Set(listed).size, listed.length, 'no file listed twice');
    resolve();
  });

  test('every manifest validates against the schema of its apiVersion and kind', async () => {
    const manifests = resolve();
    assert.deepEqual(
      manifests.map((m) => m.kind).sort(),
      [
        'ConfigMap',
        'Deployment',
        'HorizontalPodAutoscaler',
        'NetworkPolicy',
        'PodDisruptionBudget',
        'PrometheusRule',
        'Secret',
        'Service',
        'Service',
        'ServiceMonitor',
      ],
    );
    for (const manifest of manifests) {
      const where = `${manifest.file}: ${manifest.kind} ${manifest.metadata.name}`;
      // Beta versions (policy/v1beta1, autoscaling/v2beta2) still have schemas but are gone from clusters.
      assert.match(manifest.apiVersion, /(^|\/)v\d+$/, `${where}: ${manifest.apiVersion} is a GA version`);
      await assert.doesNotReject(validate(bare(manifest)), `${where} is valid`);
    }
  });

  test('the validator bites: a wrong type and an unknown kind are refused', async () => {
    const deployment = bare(gatewayParts(resolve()).deployment);
    await validate(deployment);
    await assert.rejects(validate({ ...deployment, spec: { ...deployment.spec, replicas: 'three' as unknown as number } }), /replicas must be integer/);
    await assert.rejects(validate({ ...deployment, kind: 'Deploymnet' }), /no schema for apps\/v1 Deploymnet/);
    await assert.rejects(validate({ ...deployment, apiVersion: 'hubcast.example/v1' }), /no schema for hubcast.example\/v1/);
  });

  test('names are unique per kind, no namespace is fixed, and the image is set through images:', () => {
    const manifests = resolve();
    const keys = manifests.map((m) => `${m.kind}/${m.metadata.name}`);
    assert.equal(new Set(keys).size, keys.length, `unique: ${keys.join(', ')}`);
    for (const m of manifests) assert.equal(m.metadata.namespace, undefined, `${m.file}: the overlay or kubectl -n chooses the namespace`);
    const { container } = gatewayParts(manifests);
    const version = (JSON.parse(read('package.json')) as { version: string }).version;
    assert.equal(
      container.image,
      `hubcast-gateway:${version}`,
      `kustomization.yaml images: sets hubcast-gateway to newTag ${version} (package.json's version): update it with the version`,
    );
  });

  test('selectors agree: Services, PDB, HPA, NetworkPolicy and spread all find the Deployment\'s pods', () => {
    const manifests = resolve();
    const { deployment, pod, podLabels, container } = gatewayParts(manifests);
    assert.ok(selects(deployment.spec!.selector, podLabels), 'the Deployment selects its own template');
    const services = manifests.filter((m) => m.kind === 'Service');
    for (const svc of services) {
      assert.ok(selects(svc.spec!.selector, podLabels), `Service ${svc.metadata.name} selects the gateway pods`);
      for (const p of svc.spec!.ports ?? []) containerPort(container, p.targetPort ?? p.port);
    }
    assert.equal(one(manifests, 'Service', 'hubcast-gateway-discovery').spec!.clusterIP, 'None', 'the discovery Service is headless');
    const pdb = one(manifests, 'PodDisruptionBudget');
    assert.ok(selects(pdb.spec!.selector, podLabels), 'the PDB covers the gateway pods');
    const hpa = one(manifests, 'HorizontalPodAutoscaler');
    assert.deepEqual(hpa.spec!.scaleTargetRef, { apiVersion: deployment.apiVersion, kind: 'Deployment', name: deployment.metadata.name });
    const np = one(manifests, 'NetworkPolicy');
    assert.ok(selects(np.spec!.podSelector, podLabels), 'the NetworkPolicy applies to the gateway pods');
    for (const spread of pod.topologySpreadConstraints ?? []) assert.ok(selects(spread.labelSelector, podLabels));
    for (const from of container.envFrom ?? []) {
      if (from.configMapRef) one(manifests, 'ConfigMap', from.configMapRef.name);
      if (from.secretRef) one(manifests, 'Secret', from.secretRef.name);
    }
  });

  test('the ServiceMonitor scrapes one Service by its port name, under the job the alerts select', () => {
    const manifests = resolve();
    const sm = one(manifests, 'ServiceMonitor');
    const scraped = manifests.filter((m) => m.kind === 'Service' && selects(sm.spec!.selector, m.metadata.labels));
    // Two matching Services would scrape every pod twice and double every sum in the alerts.
    assert.deepEqual(scraped.map((s) => s.metadata.name), ['hubcast-gateway']);
    const svc = scraped[0]!;
    for (const endpoint of sm.spec!.endpoints!) {
      assert.ok(svc.spec!.ports!.some((p) => p.name === endpoint.port), `the Service has a port named ${endpoint.port}`);
      assert.equal(endpoint.path, '/metrics');
    }
    // The operator takes job from the Service label named by jobLabel, else the Service's name.
    const job = sm.spec!.jobLabel === undefined ? svc.metadata.name : svc.metadata.labels?.[sm.spec!.jobLabel];
    const jobs = new Set([...read('deploy/prometheus/alerts.yml').matchAll(/job="([^"]+)"/g)].map((m) => m[1]));
    assert.deepEqual([...jobs], [job], 'every alert selects the job the ServiceMonitor produces');
  });

  test("the PrometheusRule carries deploy/prometheus/alerts.yml's groups exactly", () => {
    const rule = one(resolve(), 'PrometheusRule');
    const alerts = parse(read('deploy/prometheus/alerts.yml')) as { groups: unknown[] };
    assert.deepEqual(
      rule.spec!.groups,
      alerts.groups,
      'deploy/kubernetes/prometheusrule.yaml differs from deploy/prometheus/alerts.yml: copy the groups of alerts.yml ' +
        'into its spec.groups (alerts.yml is the source; promtool tests it)',
    );
  });

  test("probe paths and ports are the gateway's routes and its port", () => {
    const manifests = resolve();
    const { container } = gatewayParts(manifests);
    const settings = loadConfig(withRealSecrets(gatewaySettings(podEnv(manifests, container))));
    assert.equal(container.readinessProbe?.httpGet?.path, '/readyz');
    assert.equal(container.livenessProbe?.httpGet?.path, '/healthz');
    assert.equal(containerPort(container, container.readinessProbe.httpGet.port), settings.port);
    assert.equal(containerPort(container, container.livenessProbe.httpGet.port), settings.port);
    assert.equal(settings.port, loadConfig({}).port, "the gateway's PORT default, which the image keeps");
  });

  test('the gateway answers the probes and the scrape as the manifests expect, and drains on SIGTERM', { timeout: 60_000 }, async (t) => {
    const manifests = resolve();
    const { container } = gatewayParts(manifests);
    // The pod's settings (auth on, placeholders replaced), with the in-process bus instead of Redis.
    const env = withRealSecrets(podEnv(manifests, container));
    delete env.REDIS_URL;
    const gateway = await startGateway(env);
    t.after(() => gateway.kill());
    const get = async (path: string | undefined): Promise<number> => (await fetch(`${gateway.http}${path}`)).status;
    const liveness = container.livenessProbe!.httpGet!.path;
    const readiness = container.readinessProbe!.httpGet!.path;
    await gateway.waitReady();
    assert.equal(await get(liveness), 200, 'liveness answers without a token');
    assert.equal(await get(readiness), 200, 'readiness answers without a token');
    const metricsPath = one(manifests, 'ServiceMonitor').spec!.endpoints![0]!.path;
    const text = await (await fetch(`${gateway.http}${metricsPath}`)).text();
    for (const hpa of documentedManifests('HorizontalPodAutoscaler')) {
      for (const m of hpa.spec!.metrics ?? []) {
        const name = (m as { pods?: { metric: { name: string } } }).pods?.metric.name;
        if (name !== undefined) assert.match(text, new RegExp(`^${name} `, 'm'), `the documented HPA metric ${name} is exported`);
      }
    }
    gateway.proc.kill('SIGTERM');
    await waitUntil(async () => (await get(readiness).catch(() => 0)) === 503, { timeoutMs: 5000, what: 'readiness 503 after SIGTERM' });
    assert.equal(await get(liveness), 200, 'a draining gateway stays live: the kubelet must not restart it');
    assert.equal(await gateway.exited, 0);
  });

  test('the grace period outlasts preStop plus the gateway\'s drain bound, with defaults and with the ConfigMap', () => {
    const manifests = resolve();
    const { pod, container } = gatewayParts(manifests);
    const preStopMs = (container.lifecycle?.preStop?.sleep?.seconds ?? Number.NaN) * 1000;
    assert.ok(preStopMs > 0, 'preStop pauses (sleep) so endpoints drop the pod before the drain starts');
    const graceMs = (pod.terminationGracePeriodSeconds ?? 30) * 1000;
    const effective = loadConfig(withRealSecrets(gatewaySettings(podEnv(manifests, container))));
    for (const [what, config] of [['defaults', loadConfig({})], ['ConfigMap', effective]] as const) {
      const bound = preStopMs + config.drainMs + config.closeTimeoutMs + shutdownSlackMs();
      assert.ok(graceMs > bound, `terminationGracePeriodSeconds ${graceMs} ms must exceed preStop + drain bound (${what}) ${bound} ms`);
    }
  });

  test('ConfigMap and Secret keys are gateway settings; the placeholder secrets stop the gateway', () => {
    const manifests = resolve();
    const { container } = gatewayParts(manifests);
    const known = new Set<string>(CONFIG_VARIABLES);
    const data = one(manifests, 'ConfigMap').data ?? {};
    const secret = one(manifests, 'Secret').stringData ?? {};
    for (const key of [...Object.keys(data), ...Object.keys(secret)]) assert.ok(known.has(key), `${key} is a gateway setting`);
    for (const key of ['REDIS_URL', 'AUTH_JWT_SECRET', 'PUBLISH_API_KEY']) {
      assert.ok(key in secret && !(key in data), `${key} is in the Secret, not the ConfigMap`);
    }
    for (const e of container.env ?? []) assert.ok(!known.has(e.name), `${e.name} belongs in the ConfigMap, not in the Deployment`);
    const env = gatewaySettings(podEnv(manifests, container));
    // Fail closed: shipped as is, the pod exits 78 naming the variable instead of running with a guessable key.
    assert.throws(() => loadConfig(env), (err) => err instanceof ConfigError && err.variable === 'AUTH_JWT_SECRET');
    const config = loadConfig(withRealSecrets(env));
    assert.match(config.redisUrl ?? '', /^rediss?:\/\//);
  });

  test('the pod runs hardened: non-root, read-only root, no escalation, no capabilities, RuntimeDefault seccomp, resources bounded', () => {
    // Checked by name because the schemas do not refuse unknown (misspelt) fields.
    const { pod, container } = gatewayParts(resolve());
    assert.equal(pod.securityContext?.runAsNonRoot, true);
    assert.ok((pod.securityContext?.runAsUser ?? 0) > 0, 'a numeric non-root user, so the kubelet can check runAsNonRoot');
    assert.equal(pod.securityContext?.seccompProfile?.type, 'RuntimeDefault');
    assert.equal(pod.automountServiceAccountToken, false);
    assert.equal(container.securityContext?.allowPrivilegeEscalation, false);
    assert.equal(container.securityContext?.readOnlyRootFilesystem, true);
    assert.equal(container.securityContext?.runAsNonRoot, true);
    assert.deepEqual(container.securityContext?.capabilities, { drop: ['ALL'] });
    for (const kind of ['requests', 'limits'] as const) {
      assert.deepEqual(Object.keys(container.resources?.[kind] ?? {}).sort(), ['cpu', 'memory'], `resources.${kind}`);
    }
  });

  test('the NetworkPolicy admits only the http port and lets out DNS and Redis', () => {
    const manifests = resolve();
    const { container } = gatewayParts(manifests);
    const np = one(manifests, 'NetworkPolicy');
    assert.deepEqual(np.spec!.policyTypes, ['Ingress', 'Egress']);
    for (const rule of np.spec!.ingress ?? []) {
      assert.ok((rule.ports ?? []).length > 0, 'each ingress rule names its ports');
      for (const p of rule.ports!) assert.equal(containerPort(container, p.port), loadConfig({}).port);
    }
    const egress = (np.spec!.egress ?? []).flatMap((r) => r.ports ?? []).map((p) => `${p.port}/${p.protocol ?? 'TCP'}`);
    const redis = new URL(one(manifests, 'Secret').stringData!.REDIS_URL!);
    for (const wanted of ['53/UDP', '53/TCP', `${redis.port || 6379}/TCP`]) assert.ok(egress.includes(wanted), `egress allows ${wanted}`);
  });

  test('the HPA scales the Deployment on CPU above what the PDB may take down; the documented custom-metric HPA validates', async () => {
    const manifests = resolve();
    const { deployment } = gatewayParts(manifests);
    const hpa = one(manifests, 'HorizontalPodAutoscaler');
    assert.equal(hpa.apiVersion, 'autoscaling/v2');
    assert.deepEqual(hpa.spec!.metrics!.map((m) => m.resource?.name), ['cpu']);
    assert.equal(deployment.spec!.replicas, undefined, 'no replicas in the Deployment: the HPA owns the count');
    const maxUnavailable = Number(one(manifests, 'PodDisruptionBudget').spec!.maxUnavailable);
    assert.ok(hpa.spec!.minReplicas! >= 2 && hpa.spec!.minReplicas! > maxUnavailable, 'a disruption never takes every gateway');
    const documented = documentedManifests('HorizontalPodAutoscaler');
    assert.ok(documented.length > 0, 'docs/operations.md shows a connections-based HPA');
    for (const doc of documented) {
      await validate(doc);
      assert.deepEqual(doc.spec!.scaleTargetRef, hpa.spec!.scaleTargetRef, 'the documented HPA targets the gateway Deployment');
    }
  });
});
