/**
 * The sandbox bank on the development PKI, and the banks file that points Bankpay at it. The bank
 * itself only reads certificate files; joining it to the PKI here means `npm run sandbox`, `npm run
 * dev`, the tests, chaos and the benchmarks all run the same bank with the same trust.
 */
import { writeFileSync } from 'node:fs';
import { type SandboxBank, type SandboxBankOptions, startSandboxBank } from '../sandbox/bank.ts';
import { sandboxBankEntry } from '../sandbox/banks-entry.ts';
import { type DevCertificates, ensureDevCertificates } from './certificates.ts';

export interface DevSandboxOptions extends Omit<SandboxBankOptions, 'certificates'> {
  /** The development PKI's folder; missing files are made. */
  certsDir: string;
}

export interface DevSandbox {
  bank: SandboxBank;
  certificates: DevCertificates;
}

export async function startDevSandbox(o: DevSandboxOptions): Promise<DevSandbox> {
  const { certsDir, ...options } = o;
  const certificates = ensureDevCertificates(certsDir);
  const bank = await startSandboxBank({ ...options, certificates });
  return { bank, certificates };
}

/**
 * A banks file (DESIGN.md §3) with the sandbox bank as its one bank, as Bankpay reads it at
 * start; `overrides` change members of its entry (a shorter `requestedExpiry`, say).
 */
export function writeSandboxBanksFile(
  file: string,
  sandbox: DevSandbox,
  overrides: Record<string, unknown> = {},
): void {
  const banks = [sandboxBankEntry(sandbox.bank, sandbox.certificates, overrides)];
  writeFileSync(file, `${JSON.stringify({ banks }, null, 2)}\n`);
}
