import '@testing-library/jest-dom';
import { configure } from '@testing-library/react';

// The Backstage UI tables build their collections on first render, which takes a while on a
// loaded 2-core machine: wait up to 5 s for an element to appear, and up to 60 s for a test (the machine may be shared).
configure({ asyncUtilTimeout: 5000 });
jest.setTimeout(60_000);
