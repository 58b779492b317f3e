// The teardown matrix, client on the main thread (cells and rules: test/helpers/teardown-matrix.ts).
import { defineMatrixTests } from '../helpers/teardown-matrix';

defineMatrixTests('main');
