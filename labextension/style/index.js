import './base.css';
import './live.css';
import './gradebook.css';
