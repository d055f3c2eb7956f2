import { servicesVerdicts } from './services-stream.js';

servicesVerdicts('1.19');
