// The teardown matrix, client on the worker thread (cells and rules: test/helpers/teardown-matrix.ts).
import { defineMatrixTests } from '../helpers/teardown-matrix';

defineMatrixTests('worker');
