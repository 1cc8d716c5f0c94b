/** Shapes of the REST API answers this extension reads (see jupyter_exec_ext/server/openapi.yaml). */

export interface IExecutionResult {
  status: string;
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
  status: string;
  points: number;
  max_points: number;
  hidden: boolean;
  message?: string;
  expected?: string | null;
  actual?: string | null;
}

export interface ISubmissionResult {
  exercise_id: string;
  status: string;
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
