/** Shapes of the REST API answers this extension reads (see jupyter_exec_ext/server/openapi.yaml). */

/**
 * How a run ended (`ExecutionResult.status` in openapi.yaml, `Status` in sandbox/models.py);
 * a submission's `status` is how the submitted code itself ran. `cancelled` only for a live run
 * its user stopped.
 */
export const RUN_STATUSES = [
  'ok',
  'runtime_error',
  'syntax_error',
  'timeout',
  'memory_limit',
  'output_limit',
  'policy_violation',
  'internal_error',
  'cancelled'
] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

/** One test's verdict (`TestResult.status` in openapi.yaml, grading/grader.py). */
export const TEST_STATUSES = ['passed', 'failed', 'error', 'timeout', 'memory_limit'] as const;
export type TestStatus = (typeof TEST_STATUSES)[number];

export interface IExecutionResult {
  status: RunStatus;
  stdout: string;
  stderr: string;
  exit_code: number | null;
  duration_ms: number;
  truncated: boolean;
  cached: boolean;
  message?: string;
  notes?: string[];
}

export interface ITestResult {
  name: string;
  status: TestStatus;
  points: number;
  max_points: number;
  hidden: boolean;
  message?: string;
  expected?: string | null;
  actual?: string | null;
}

export interface ISubmissionResult {
  exercise_id: string;
  status: RunStatus;
  score: number;
  max_score: number;
  tests: ITestResult[];
  stdout: string;
  stderr: string;
  duration_ms: number;
  message?: string;
}

export interface IDockerStatus {
  docker: {
    enabled: boolean;
    reachable: boolean;
    image_present: boolean;
    image: string;
    error?: string | null;
  };
  runs: {
    in_flight: number;
    queued: number;
  };
}
